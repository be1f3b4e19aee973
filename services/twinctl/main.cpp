// twinctl: the ops CLI.
//
//   twinctl audit verify --data-dir DIR [--encryption-key-file FILE]
//       walks the hash-chained audit log of a node's data directory (the
//       node must be stopped, or point it at a copy) and reports the first
//       broken link. Exit 0: intact; 1: broken; 2: usage or I/O error.
//
//   twinctl audit list --data-dir DIR [--encryption-key-file FILE] [--resource R]
//       prints the entries (sequence, time, principal, action, resource,
//       outcome), optionally only those naming resource R or below it.
//       Patients and devices appear by pseudonym (tenants/T/patients/~HEX,
//       tenants/T/devices/~HEX); --resource takes the real name and finds
//       its pseudonym.
//
//   twinctl token --hs256-secret-file F --subject S --tenant T --role R [--role R2]
//                 [--device D] [--audience A] [--ttl-s N]
//       prints a development bearer token signed with the node's HS256
//       secret (nodes started with --auth-hs256-secret-file).
//
//   twinctl scan --data-dir DIR [--encryption-key-file FILE] --text T [--text T2 ...]
//       lists the files of a data directory holding any of the texts, read
//       as stored and decrypted with the node key (evidence for an
//       erasure). Exit 0: none found; 1: found; 2: usage or I/O error.
//
//   twinctl cluster status --target HOST:PORT --token-file F [--tls-ca-file CA | --plaintext]
//       the members, their health and shards as that node sees them.
//
//   twinctl cluster change --target HOST:PORT --token-file F [--tls-ca-file CA | --plaintext]
//                          --member NAME=HOST:PORT [--member ...] [--shards-per-step N]
//       replaces the member list (an sre's token): shards move to their new
//       owners (docs/cluster.md, "Hand-off"). Exit 0: done; 1: stopped part
//       way (run it again); 2: refused or a usage error.
//
//   twinctl twins list|get|watch, alerts list|ack|resolve|silence, fhir export, call Service/Method,
//           patients create|get|update|chart|erase, devices create|get|assign|unassign|decommission|
//           reset-sequence, settings get|set
//       the public API of a running node (--target, --token-file, TLS as
//       above; --json): services/twinctl/README.md lists them. Exit 0 done,
//       1 refused by the node, 2 usage error, 3 try again later.
//
//   twinctl completion bash
//       a bash completion script for every command and option.
//
//   twinctl alerts burden --target HOST:PORT --token-file F [--tls-ca-file CA | --plaintext]
//                         --tenant T [--ward W] [--patient P] [--hours H] [--top N] [--json]
//       the alarm burden over the last H hours (default 24): alerts per
//       patient-day per ward, by kind and priority, time to acknowledge,
//       share resolved unacknowledged, the noisiest patients and devices.
#include <cstdio>
#include <string>

#include <chrono>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <jwt.h>
#include <nlohmann/json.hpp>

#include "services/twinctl/alert_commands.hpp"
#include "services/twinctl/api_commands.hpp"
#include "services/twinctl/cluster_commands.hpp"
#include "services/twinctl/completion.hpp"
#include "services/twinctl/manual.hpp"
#include "services/twinctl/registry_commands.hpp"
#include "services/twinctl/replica_commands.hpp"
#include "services/twinctl/rollout_commands.hpp"
#include "storage/audit_log.hpp"
#include "storage/errc.hpp"
#include "storage/file_scan.hpp"
#include "storage/store.hpp"

using namespace healthtwin;

namespace {

int print_token(const std::string& secret_file, const std::string& subject, const std::string& tenant,
                const std::vector<std::string>& roles, const std::string& device,
                const std::string& audience, int64_t ttl_s) {
  std::ifstream in{secret_file, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  auto secret = ss.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
    secret.pop_back();
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  nlohmann::json claims{{"sub", subject}, {"tenant", tenant}, {"roles", roles},
                        {"aud", audience}, {"iat", now},     {"exp", now + ttl_s}};
  if (!device.empty())
    claims["device"] = device;
  jwt_t* jwt = nullptr;
  char* token = nullptr;
  if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, claims.dump().c_str()) == 0 &&
      jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) == 0)
    token = jwt_encode_str(jwt);
  jwt_free(jwt);
  if (!token) {
    std::fprintf(stderr, "twinctl: cannot sign the token\n");
    return 2;
  }
  std::printf("%s\n", token);
  free(token);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"twinctl: HealthTwin operations"};
  app.require_subcommand(1);
  auto* audit = app.add_subcommand("audit", "the audit log")->require_subcommand(1);
  auto* verify = audit->add_subcommand("verify", "check every link of the hash chain");
  std::string data_dir;
  verify->add_option("--data-dir", data_dir, "the node's data directory (node stopped)")
      ->required()
      ->check(CLI::ExistingDirectory);
  std::string key_file;
  verify->add_option("--encryption-key-file", key_file,
                     "the node key file, when the data directory is encrypted")
      ->check(CLI::ExistingFile);
  auto* list = audit->add_subcommand("list", "print the entries");
  list->add_option("--data-dir", data_dir, "the node's data directory (node stopped)")
      ->required()
      ->check(CLI::ExistingDirectory);
  list->add_option("--encryption-key-file", key_file, "the node key file, when encrypted")
      ->check(CLI::ExistingFile);
  std::string resource_prefix;
  list->add_option("--resource", resource_prefix, "only entries naming this resource or one below it");

  auto* token = app.add_subcommand("token", "print a development bearer token (HS256)");
  std::string secret_file, subject, tenant, device, audience = "healthtwin";
  std::vector<std::string> roles;
  int64_t ttl_s = 3600;
  token->add_option("--hs256-secret-file", secret_file, "the node's --auth-hs256-secret-file")
      ->required()
      ->check(CLI::ExistingFile);
  token->add_option("--subject", subject, "who the token speaks for")->required();
  token->add_option("--tenant", tenant, "the tenant its roles are scoped to")->required();
  token->add_option("--role", roles, "device, service, clinician, ops-admin or sre (repeatable)")
      ->required()
      ->check(CLI::IsMember({"device", "service", "clinician", "ops-admin", "sre"}));
  token->add_option("--device", device, "device id (device tokens)");
  token->add_option("--audience", audience, "the node's --auth-audience")->capture_default_str();
  token->add_option("--ttl-s", ttl_s, "seconds until it expires")
      ->check(CLI::Range(int64_t{1}, int64_t{30 * 86'400}))
      ->capture_default_str();

  auto* scan = app.add_subcommand("scan", "find texts in any file of a data directory");
  std::string scan_dir;
  std::string scan_key;
  std::vector<std::string> texts;
  scan->add_option("--data-dir", scan_dir, "the data directory")->required()->check(CLI::ExistingDirectory);
  scan->add_option("--encryption-key-file", scan_key, "the node key file, to search decrypted contents too")
      ->check(CLI::ExistingFile);
  scan->add_option("--text", texts, "a text to look for (repeatable)")->required();

  auto* cluster = app.add_subcommand("cluster", "a running cluster (ClusterService)")->require_subcommand(1);
  services::channel_settings node;
  std::string token_file;
  auto connection = [&](CLI::App* cmd) {
    cmd->add_option("--target", node.target, "a member's gRPC address, host:port")->required();
    cmd->add_option("--token-file", token_file, "bearer token (cluster: sre, or ops-admin for status; "
                                                "alerts: clinician or service)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--tls-ca-file", node.ca_file, "CA of the node's certificate")->check(CLI::ExistingFile);
    cmd->add_flag("--plaintext", node.plaintext, "no TLS (a node started with --insecure-plaintext)");
  };
  auto* cluster_status = cluster->add_subcommand("status", "members, health and shards");
  connection(cluster_status);
  auto* backup = cluster->add_subcommand("backup", "a consistent backup of the node's data, made while it serves");
  connection(backup);
  std::string backup_name;
  bool backup_json = false;
  backup->add_option("name", backup_name, "1-63 characters of [a-z0-9-]: a new directory under the node's --backup-dir")
      ->required();
  backup->add_flag("--json", backup_json, "print the Backup message as JSON");
  auto* change = cluster->add_subcommand("change", "replace the member list; shards move");
  connection(change);
  std::vector<std::string> new_members;
  uint32_t shards_per_step = 16;
  change->add_option("--member", new_members, "NAME=HOST:PORT of a member's peer listener (repeatable: "
                                              "the whole new list)")
      ->required();
  change->add_option("--shards-per-step", shards_per_step, "shards moved together")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  twinctl::output out;
  auto with_json = [&](CLI::App* cmd) {
    connection(cmd);
    cmd->add_flag("--json", out.json, "print the answer as JSON (proto3 mapping) instead of a table");
  };
  auto* call = app.add_subcommand("call", "call any unary method of healthtwin.v1 with a JSON request");
  connection(call);
  std::string method, data;
  call->add_option("method", method, "Service/Method, e.g. TwinService/GetPatientTwin")->required();
  call->add_option("--data", data, "the request as JSON (default {})");

  auto* twins = app.add_subcommand("twins", "a running node's twins (TwinService)")->require_subcommand(1);
  auto* twin_get = twins->add_subcommand("get", "one twin: tenants/T/patients/P or tenants/T/devices/D");
  with_json(twin_get);
  std::string twin_name;
  twin_get->add_option("name", twin_name, "the twin's name")->required();
  auto* twin_list = twins->add_subcommand("list", "a tenant's patient twins, filtered and ordered");
  with_json(twin_list);
  std::string list_tenant, filter, order_by;
  twin_list->add_option("--tenant", list_tenant, "the tenant")->required();
  twin_list->add_option("--filter", filter, "e.g. 'ward = \"ICU-3\" AND news2 >= 5' (docs/api.md)");
  twin_list->add_option("--order-by", order_by, "e.g. 'news2 desc'");
  auto* twin_watch = twins->add_subcommand("watch", "a patient's twin, a line per change");
  with_json(twin_watch);
  int watch_count = 0;
  twin_watch->add_option("name", twin_name, "tenants/T/patients/P")->required();
  twin_watch->add_option("--count", watch_count, "stop after this many (0: until interrupted)")
      ->check(CLI::NonNegativeNumber);

  auto* fhir = app.add_subcommand("fhir", "FHIR R4 (FhirService)")->require_subcommand(1);
  auto* fhir_export = fhir->add_subcommand("export", "a patient as a FHIR R4 Bundle (JSON on stdout)");
  connection(fhir_export);
  std::string fhir_patient;
  double fhir_hours = 24;
  fhir_export->add_option("name", fhir_patient, "tenants/T/patients/P")->required();
  fhir_export->add_option("--hours", fhir_hours, "vital signs of the last H hours")
      ->check(CLI::Range(0.01, 31.0 * 24))
      ->capture_default_str();

  auto* alerts = app.add_subcommand("alerts", "a running node's alerts (AlertService)")->require_subcommand(1);
  auto* alert_list = alerts->add_subcommand("list", "open alerts (and resolved ones with --include-resolved)");
  with_json(alert_list);
  std::string alert_tenant, alert_ward, alert_patient;
  bool include_resolved = false;
  alert_list->add_option("--tenant", alert_tenant, "the tenant")->required();
  alert_list->add_option("--ward", alert_ward, "one ward only");
  alert_list->add_option("--patient", alert_patient, "one patient only (its id)");
  alert_list->add_flag("--include-resolved", include_resolved, "resolved alerts the node still holds too");
  std::string alert_name, note;
  auto* alert_ack = alerts->add_subcommand("ack", "acknowledge an alert (as the token's subject)");
  auto* alert_resolve = alerts->add_subcommand("resolve", "resolve an alert by hand");
  for (auto* cmd : {alert_ack, alert_resolve}) {
    with_json(cmd);
    cmd->add_option("name", alert_name, "tenants/T/patients/P/alerts/ID")->required();
    cmd->add_option("--note", note, "up to 1,000 characters");
  }
  auto* alert_silence = alerts->add_subcommand("silence", "silence a patient's alerts for a while");
  with_json(alert_silence);
  std::string silence_patient, silence_metric, reason;
  int minutes = 15;
  alert_silence->add_option("--patient", silence_patient, "tenants/T/patients/P")->required();
  alert_silence->add_option("--minutes", minutes, "how long (1 .. 240)")
      ->check(CLI::Range(1, 240))
      ->capture_default_str();
  alert_silence->add_option("--metric", silence_metric, "one metric only (HEART_RATE, SPO2, ...)");
  alert_silence->add_option("--reason", reason, "why (kept in the audit log)");
  auto* burden = alerts->add_subcommand("burden", "alarm burden: alerts per patient-day, time to acknowledge, "
                                                  "the noisiest patients and devices");
  connection(burden);
  twinctl::burden_query bq;
  burden->add_option("--tenant", bq.tenant, "the tenant")->required();
  burden->add_option("--ward", bq.ward, "one ward only");
  burden->add_option("--patient", bq.patient, "one patient only (its id)");
  burden->add_option("--hours", bq.hours, "the window, ending now")
      ->check(CLI::Range(0.01, 31.0 * 24))
      ->capture_default_str();
  burden->add_option("--top", bq.top, "noisiest patients and devices listed")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  burden->add_flag("--json", bq.json, "the AlarmBurden message as JSON");
  auto* replica = app.add_subcommand("replica", "a standby copy of a node's data for disaster recovery")
                      ->require_subcommand(1);
  auto* replica_follow = replica->add_subcommand("follow", "copy the node's data every interval into --dir");
  connection(replica_follow);
  twinctl::follow_options follow;
  double follow_interval_s = 10;
  replica_follow->add_option("--dir", follow.dir, "the replica directory (complete copies are copy-NNNNNN)")
      ->required();
  replica_follow->add_option("--interval-s", follow_interval_s, "seconds from the start of one copy to the next")
      ->check(CLI::Range(0.1, 86'400.0))
      ->capture_default_str();
  replica_follow->add_option("--keep", follow.keep, "complete copies kept")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  replica_follow->add_flag("--once", follow.once, "one copy, then exit");
  std::string replica_dir, promote_to;
  bool replica_json = false;
  auto* replica_promote = replica->add_subcommand("promote", "move the newest copy to a data directory for a node");
  replica_promote->add_option("--dir", replica_dir, "the replica directory")->required()->check(CLI::ExistingDirectory);
  replica_promote->add_option("--data-dir", promote_to, "a new directory: the promoted node's --data-dir")
      ->required();
  replica_promote->add_flag("--json", replica_json, "print what was promoted as JSON");
  auto* replica_show = replica->add_subcommand("status", "the newest complete copy and its age");
  replica_show->add_option("--dir", replica_dir, "the replica directory")->required()->check(CLI::ExistingDirectory);
  replica_show->add_flag("--json", replica_json, "as JSON");
  twinctl::registry_commands registry{app, with_json};
  twinctl::rollout_commands rollouts{app, with_json};
  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  auto* completion_bash = completion->add_subcommand("bash", "for bash: source <(twinctl completion bash)");
  completion->require_subcommand(1);
  twinctl::add_manual(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : twinctl::usage;  // --help: 0; a usage error: 2
  }

  if (completion_bash->parsed()) {
    std::printf("%s", twinctl::bash_completion(app, "twinctl").c_str());
    return 0;
  }

  if (replica_promote->parsed())
    return twinctl::promote_replica(replica_dir, promote_to, replica_json);
  if (replica_show->parsed())
    return twinctl::replica_status(replica_dir, replica_json);
  if (replica_follow->parsed()) {
    node.token = services::read_token_file(token_file);
    node.token_file = token_file;  // read again when rotated
    follow.interval = std::chrono::milliseconds(static_cast<int64_t>(follow_interval_s * 1000));
    if (node.token.empty()) {
      std::fprintf(stderr, "twinctl: --token-file %s is empty or unreadable\n", token_file.c_str());
      return 2;
    }
    return twinctl::follow_replica(node, follow);
  }

  if (cluster->parsed() || alerts->parsed() || twins->parsed() || call->parsed() || fhir->parsed() ||
      registry.parsed() || rollouts.parsed()) {
    node.token = services::read_token_file(token_file);
    if (node.token.empty()) {
      std::fprintf(stderr, "twinctl: --token-file %s is empty or unreadable\n", token_file.c_str());
      return 2;
    }
    if (registry.parsed())
      return registry.run(node, out.json);
    if (rollouts.parsed())
      return rollouts.run(node, out.json);
    if (burden->parsed())
      return twinctl::print_alarm_burden(node, bq);
    if (call->parsed())
      return twinctl::call_method(node, method, data);
    if (fhir_export->parsed())
      return twinctl::export_fhir(node, fhir_patient, fhir_hours);
    if (twin_get->parsed())
      return twinctl::get_twin(node, twin_name, out);
    if (twin_list->parsed())
      return twinctl::list_twins(node, list_tenant, filter, order_by, out);
    if (twin_watch->parsed())
      return twinctl::watch_twin(node, twin_name, watch_count, out);
    if (alert_list->parsed())
      return twinctl::list_alerts(node, alert_tenant, alert_ward, alert_patient, include_resolved, out);
    if (alert_ack->parsed() || alert_resolve->parsed())
      return twinctl::act_on_alert(node, alert_ack->parsed() ? "ack" : "resolve", alert_name, note, out);
    if (alert_silence->parsed())
      return twinctl::silence_alerts(node, silence_patient, minutes, silence_metric, reason, out);
    if (cluster_status->parsed())
      return twinctl::print_cluster_status(node);
    if (backup->parsed())
      return twinctl::backup_node(node, backup_name, backup_json);
    return twinctl::change_members(node, new_members, shards_per_step);
  }

  if (token->parsed())
    return print_token(secret_file, subject, tenant, roles, device, audience, ttl_s);

  if (scan->parsed()) {
    storage::store_settings s;
    s.data_dir = scan_dir;
    s.encryption_key_file = scan_key;
    int found = 0;
    for (auto& text : texts) {
      auto hits = storage::files_containing(s, text);
      if (!hits) {
        std::fprintf(stderr, "twinctl: %s\n", storage::describe(hits.error()).c_str());
        return 2;
      }
      for (auto& f : *hits)
        std::printf("found \"%s\" in %s\n", text.c_str(), f.c_str());
      found += hits->empty() ? 0 : 1;
    }
    if (found == 0)
      std::printf("none of %zu texts found\n", texts.size());
    return found == 0 ? 0 : 1;
  }

  storage::store_settings s;
  s.data_dir = data_dir;
  s.shards = 0;  // as the directory was created
  s.encryption_key_file = key_file;
  auto st = storage::store::open(s);
  if (!st) {
    std::fprintf(stderr, "twinctl: cannot open %s: %s\n", data_dir.c_str(),
                 storage::describe(st.error()).c_str());
    return 2;
  }
  if (list->parsed()) {
    // Patients and devices are stored by pseudonym: look for that of the one asked for.
    if (!resource_prefix.empty())
      resource_prefix = storage::audit_log::stored_resource(**st, resource_prefix);
    auto err = storage::audit_log::read(**st, [&](uint64_t seq, const storage::audit_entry& e) {
      auto& r = e.resource;
      if (resource_prefix.empty() || r == resource_prefix ||
          (r.size() > resource_prefix.size() && r.compare(0, resource_prefix.size(), resource_prefix) == 0 &&
           r[resource_prefix.size()] == '/'))
        std::printf("%llu\t%lld\t%s\t%s\t%s\t%s\n", static_cast<unsigned long long>(seq),
                    static_cast<long long>(e.time_ms), e.principal.c_str(), e.action.c_str(),
                    r.c_str(), e.outcome.c_str());
      return true;
    });
    if (err) {
      std::fprintf(stderr, "twinctl: reading the audit log failed: %s\n",
                   storage::describe(err).c_str());
      return 2;
    }
    return 0;
  }
  auto v = storage::audit_log::verify(**st);
  if (!v) {
    std::fprintf(stderr, "twinctl: reading the audit log failed: %s\n",
                 storage::describe(v.error()).c_str());
    return 2;
  }
  if (v->first_broken) {
    std::printf("audit log BROKEN at entry %llu: %s (%llu entries before it are intact)\n",
                static_cast<unsigned long long>(*v->first_broken), v->reason.c_str(),
                static_cast<unsigned long long>(v->entries));
    return 1;
  }
  std::printf("audit log intact: %llu entries\n", static_cast<unsigned long long>(v->entries));
  return 0;
}
