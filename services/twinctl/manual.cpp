#include "services/twinctl/manual.hpp"

#include <map>

namespace healthtwin::twinctl {

namespace {

struct page {
  const char* description;
  const char* exit_status;
  const char* examples;
};

constexpr const char* api_exit =
    "0 done; 1 refused by the node (invalid, not found, permission denied, conflict);\n"
    "  2 usage error; 3 try again later (unavailable, deadline exceeded, rate limited)";
constexpr const char* conn = " --target node:50051 --tls-ca-file ca.pem --token-file t.jwt";

const std::map<std::string, page>& pages() {
  static const std::map<std::string, page> p{
      {"audit verify", {"Walks the hash chain of a node's audit log in its data directory (the node stopped, or a\n"
                        "  copy) and reports the first broken link: an entry changed, removed or inserted.",
                        "0 intact; 1 broken (the entry is named); 2 usage or I/O error",
                        "twinctl audit verify --data-dir /var/lib/healthtwin --encryption-key-file node.key"}},
      {"audit list", {"Prints the audit entries (sequence, time, principal, action, resource, outcome), optionally\n"
                      "  only those about one resource. Patients and devices appear by pseudonym; --resource takes the\n"
                      "  real name.",
                      "0 done; 2 usage or I/O error",
                      "twinctl audit list --data-dir /var/lib/healthtwin --resource tenants/h1/patients/p7"}},
      {"token", {"Prints a development bearer token signed with a node's HS256 secret (nodes started with\n"
                 "  --auth-hs256-secret-file). Production tokens come from the identity provider.",
                 "0 done; 2 usage error or the secret could not be read",
                 "twinctl token --hs256-secret-file dev.secret --subject nurse-1 --tenant h1 --role clinician"}},
      {"scan", {"Lists the files of a data directory that hold any of the texts, read as stored and decrypted\n"
                "  with the node key: evidence that an erasure left nothing behind.",
                "0 none found; 1 found; 2 usage or I/O error",
                "twinctl scan --data-dir /var/lib/healthtwin --encryption-key-file node.key --text p7"}},
      {"cluster status", {"The members, their health and the shards each owns, as the node asked sees them\n"
                          "  (an sre's or ops-admin's token).",
                          api_exit, "twinctl cluster status --target node-0:50051 --tls-ca-file ca.pem --token-file sre.jwt"}},
      {"cluster change", {"Replaces the member list; shards hand off to their new owners a step at a time\n"
                          "  (docs/cluster.md). Run it again after an interruption: it continues.",
                          "0 done; 1 stopped part way (run it again); 2 refused or usage error",
                          "twinctl cluster change --target node-0:50051 --tls-ca-file ca.pem --token-file sre.jwt \\\n"
                          "    --member node-0=node-0:7000 --member node-1=node-1:7000 --member node-2=node-2:7000"}},
      {"cluster backup", {"A consistent backup of the node's data directory, taken while it serves: every column\n"
                          "  family flushed, then its files hard-linked into {--backup-dir}/NAME on the node's host.\n"
                          "  Restore: copy it to an empty data directory and start a node on it with the same keys\n"
                          "  (docs/operations.md, \"Backup and restore\"). In a cluster, back up each member.",
                          api_exit, "twinctl cluster backup nightly-2026-12-07 --target node-0:50051 --tls-ca-file ca.pem \\\n"
                          "    --token-file sre.jwt"}},
      {"replica follow", {"Keeps a standby copy of a node's data directory in --dir, for disaster recovery in\n"
                          "  another region: every interval a consistent copy (ClusterService.ReadReplicaCopy, an sre's\n"
                          "  token) of which only new table files travel; the newest --keep complete copies stay.\n"
                          "  The files stay encrypted under the node key. Runs until SIGINT/SIGTERM, or --once.",
                          api_exit, "twinctl replica follow --dir /srv/dr/node-0 --interval-s 10 --target node-0:50051 \\\n"
                          "    --tls-ca-file ca.pem --token-file sre.jwt"}},
      {"replica promote", {"Moves the newest complete copy to a new data directory and prints its recovery point;\n"
                           "  start a node there with the primary's keys (docs/multi-region.md, \"Disaster recovery\").\n"
                           "  Refused while a follower holds --dir.",
                           "0 done; 1 no complete copy or it cannot be moved; 2 usage error or a follower runs",
                           "twinctl replica promote --dir /srv/dr/node-0 --data-dir /var/lib/healthtwin/data"}},
      {"replica status", {"The newest complete copy in --dir: which node made it, when, and its age (the\n"
                          "  recovery point should the primary be lost now).",
                          "0 done; 1 no complete copy", "twinctl replica status --dir /srv/dr/node-0 --json"}},
      {"call", {"Calls any unary method of healthtwin.v1 with a JSON request (proto3 JSON mapping) and\n"
                "  prints the answer as JSON.",
                api_exit, "twinctl call TwinService/GetPatientTwin --data '{\"name\":\"tenants/h1/patients/p7\"}'"}},
      {"twins get", {"One twin: a patient's (NEWS2, vitals, open alerts) or a device's (battery, sequence,\n"
                     "  online, shadow).", api_exit, "twinctl twins get tenants/h1/patients/p7 --json"}},
      {"twins list", {"A tenant's patient twins, every page, filtered and ordered with the filter language of\n"
                      "  docs/api.md.", api_exit,
                      "twinctl twins list --tenant h1 --filter 'ward = \"ICU-3\" AND news2 >= 5' --order-by 'news2 desc'"}},
      {"twins watch", {"A patient's twin, one line per change, until --count changes or until interrupted.",
                       api_exit, "twinctl twins watch tenants/h1/patients/p7 --count 10 --json"}},
      {"fhir export", {"A patient as a FHIR R4 Bundle on stdout: Patient, Devices, vital-signs Observations,\n"
                       "  NEWS2, open alerts as Flags (docs/fhir.md).",
                       api_exit, "twinctl fhir export tenants/h1/patients/p7 --hours 12 > p7.json"}},
      {"alerts list", {"Open alerts of a tenant (a ward, a patient), newest first; resolved ones the node still\n"
                       "  holds with --include-resolved.", api_exit, "twinctl alerts list --tenant h1 --ward ICU-3"}},
      {"alerts ack", {"Acknowledges an alert as the token's subject; escalation stops.", api_exit,
                      "twinctl alerts ack tenants/h1/patients/p7/alerts/a1b2 --note 'at the bedside'"}},
      {"alerts resolve", {"Resolves an alert by hand (the condition is over or was not real).", api_exit,
                          "twinctl alerts resolve tenants/h1/patients/p7/alerts/a1b2 --note 'probe off'"}},
      {"alerts silence", {"Silences a patient's alerts (one metric or all) for 1-240 minutes; recorded with the\n"
                          "  reason in the audit log.", api_exit,
                          "twinctl alerts silence --patient tenants/h1/patients/p7 --metric SPO2 --minutes 15 --reason suction"}},
      {"alerts burden", {"The alarm burden over the last hours: alerts per patient-day per ward by kind and\n"
                         "  priority, time to acknowledge, share resolved unacknowledged, the noisiest sources.",
                         api_exit, "twinctl alerts burden --tenant h1 --ward ICU-3 --hours 168"}},
      {"patients create", {"Registers a patient in a ward (and bed; home region; SpO2 scale 2).", api_exit,
                           "twinctl patients create tenants/h1/patients/p7 --ward ICU-3 --bed 4"}},
      {"locate", {"The region a patient or device is homed in: this node's when it is registered here, else\n"
                  "  the region (of those the node knows) that has it (docs/multi-region.md).", api_exit,
                  "twinctl locate tenants/h1/patients/p7"}},
      {"patients get", {"A patient's registration: ward, bed, home region, devices.", api_exit,
                        "twinctl patients get tenants/h1/patients/p7"}},
      {"patients update", {"Moves a patient to another ward or bed, or switches SpO2 scale 2; only the fields given\n"
                           "  change (with --etag: only if nobody changed the patient since).", api_exit,
                           "twinctl patients update tenants/h1/patients/p7 --ward MAU --bed 12"}},
      {"patients chart", {"Charts ACVPU consciousness and supplemental oxygen: NEWS2 parameters no device measures.",
                          api_exit, "twinctl patients chart tenants/h1/patients/p7 --acvpu A --oxygen 2"}},
      {"patients erase", {"Erases a patient and everything stored of it on every member, for good (GDPR art. 17);\n"
                          "  its devices are detached. Needs --yes.", api_exit,
                          "twinctl patients erase tenants/h1/patients/p7 --yes"}},
      {"devices create", {"Registers a device of a type.", api_exit,
                          "twinctl devices create tenants/h1/devices/mon-4 --type BEDSIDE_MONITOR"}},
      {"devices get", {"A device's registration, its patient and its desired and reported configuration.", api_exit,
                       "twinctl devices get tenants/h1/devices/mon-4 --json"}},
      {"devices assign", {"Attaches a device to a patient: its readings go to that patient's twin from now on.",
                          api_exit, "twinctl devices assign tenants/h1/devices/mon-4 --patient tenants/h1/patients/p7"}},
      {"devices unassign", {"Detaches a device from its patient.", api_exit,
                            "twinctl devices unassign tenants/h1/devices/mon-4"}},
      {"devices decommission", {"Retires a device: it is detached and its readings are refused for good. Needs --yes.",
                                api_exit, "twinctl devices decommission tenants/h1/devices/mon-4 --yes"}},
      {"devices reset-sequence", {"Accepts a device's readings numbered from 1 again (after a factory reset).",
                                  api_exit, "twinctl devices reset-sequence tenants/h1/devices/mon-4"}},
      {"settings get", {"A patient's clinical settings as JSON: alert limits per metric, SpO2 scale 2, baseline,\n"
                        "  forecast horizons, device-offline time, battery threshold.", api_exit,
                        "twinctl settings get tenants/h1/patients/p7"}},
      {"settings set", {"Changes a patient's clinical settings: the JSON fields given replace the current ones\n"
                        "  (a JSON merge patch onto what settings get prints); the result is printed.", api_exit,
                        "twinctl settings set tenants/h1/patients/p7 \\\n"
                        "    --data '{\"alertLimits\":[{\"metric\":\"METRIC_HEART_RATE\",\"highAtOrAbove\":140}]}'"}},
      {"rollouts create", {"Starts a firmware rollout over the devices named with --device (in that order: the first\n"
                           "  ones form the first wave) or over every device of a --type. Each wave sets its devices'\n"
                           "  desired firmware; a device its patient's care needs waits (docs/rollouts.md); too many\n"
                           "  failures pause it.", api_exit,
                           "twinctl rollouts create tenants/h1/rollouts/oxi-4-2 --firmware 4.2.0 --type PULSE_OXIMETER \\\n"
                           "    --waves 10,50,100 --max-failure-ratio 0.05"}},
      {"rollouts get", {"A rollout: its status, wave and counts, and each device's state and the reason it waits\n"
                        "  or failed.", api_exit, "twinctl rollouts get tenants/h1/rollouts/oxi-4-2"}},
      {"rollouts list", {"A tenant's rollouts, newest first, with their counts.", api_exit,
                         "twinctl rollouts list --tenant h1"}},
      {"rollouts pause", {"Starts no more devices; those installing carry on.", api_exit,
                          "twinctl rollouts pause tenants/h1/rollouts/oxi-4-2"}},
      {"rollouts resume", {"Starts devices again after a pause; the failures so far no longer count towards the\n"
                           "  limit.", api_exit, "twinctl rollouts resume tenants/h1/rollouts/oxi-4-2"}},
      {"rollouts cancel", {"Ends a rollout for good: devices not started keep their firmware.", api_exit,
                           "twinctl rollouts cancel tenants/h1/rollouts/oxi-4-2"}},
      {"rollouts override", {"A clinician lets one device the safety gate holds back update now (its patient is\n"
                             "  cared for otherwise). Recorded with the reason and audited.", api_exit,
                             "twinctl rollouts override tenants/h1/rollouts/oxi-4-2 --device tenants/h1/devices/oxi-7 \\\n"
                             "    --reason 'spot checks by the ward nurse meanwhile'"}},
      {"completion bash", {"Prints a bash completion script for every command and option.", "0 done",
                           "source <(twinctl completion bash)"}},
  };
  return p;
}

void walk(CLI::App* cmd, const std::string& path) {
  for (auto* sub : cmd->get_subcommands({})) {
    auto name = path.empty() ? sub->get_name() : path + " " + sub->get_name();
    if (auto i = pages().find(name); i != pages().end()) {
      std::string examples = i->second.examples;
      std::string conn_note = std::string{i->second.exit_status} == api_exit
                                  ? "\n\n  Every command that calls a node takes the same connection flags:\n"
                                    "  --target HOST:PORT --token-file FILE and --tls-ca-file CA (or --plaintext)." +
                                        std::string{"\n  e.g." } + conn
                                  : "";
      sub->footer("\nDESCRIPTION\n  " + std::string{i->second.description} + conn_note + "\n\nEXIT STATUS\n  " +
                  i->second.exit_status + "\n\nEXAMPLES\n  " + examples + "\n");
    }
    walk(sub, name);
  }
}

}  // namespace

void add_manual(CLI::App& app) {
  app.footer("\nEach command has its own manual: twinctl COMMAND [SUBCOMMAND] --help\n"
             "(DESCRIPTION, EXIT STATUS, EXAMPLES). docs: services/twinctl/README.md");
  walk(&app, "");
}

}  // namespace healthtwin::twinctl
