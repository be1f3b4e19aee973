#include "services/node/node_config.hpp"
#include "services/node/replication_config.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <CLI/CLI.hpp>

#include "actors/models/twin_name.hpp"

namespace healthtwin::node {

std::optional<std::pair<std::string, uint16_t>> split_host_port(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    return std::nullopt;
  auto host = s.substr(0, colon);
  if (host.front() == '[' && host.back() != ']')
    return std::nullopt;
  unsigned port = 0;
  auto* first = s.data() + colon + 1;
  auto* last = s.data() + s.size();
  auto [p, ec] = std::from_chars(first, last, port);
  if (ec != std::errc{} || p != last || port > 65535)
    return std::nullopt;
  return std::make_pair(host, static_cast<uint16_t>(port));
}

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "node-0";
  return buf;
}

// CLI11 validator for host:port.
const CLI::Validator listen_address{[](std::string& s) -> std::string {
                                      if (!split_host_port(s))
                                        return "must be host:port with a port of 0-65535, got '" + s + "'";
                                      return {};
                                    },
                                    "HOST:PORT"};

}  // namespace

// --region and --region-endpoints (REGION=HOST:PORT,...) into cfg; why not.
static std::string parse_regions(const std::string& endpoints, node_config& cfg) {
  if (!cfg.region.empty() && !models::is_valid_id(cfg.region))
    return "--region: must be 1-63 characters of [a-z0-9-], starting with a letter or digit";
  if (endpoints.empty())
    return {};
  if (cfg.region.empty())
    return "--region-endpoints: needs --region (this node's own region)";
  std::string_view rest = endpoints;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    auto eq = item.find('=');
    auto quoted = "\"" + std::string{item.substr(0, 64)} + (item.size() > 64 ? "..." : "") + "\"";
    if (eq == std::string_view::npos)
      return "--region-endpoints: " + quoted + " is not REGION=HOST:PORT";
    std::string region{item.substr(0, eq)}, address{item.substr(eq + 1)};
    if (!models::is_valid_id(region))
      return "--region-endpoints: " + quoted + ": the region must be 1-63 characters of [a-z0-9-]";
    if (region == cfg.region)
      return "--region-endpoints: " + quoted + " names this node's own region";
    if (!split_host_port(address))
      return "--region-endpoints: " + quoted + ": the endpoint must be HOST:PORT";
    if (!cfg.region_endpoints.emplace(region, address).second)
      return "--region-endpoints: region " + region + " is listed twice";
  }
  return {};
}

parse_outcome parse_node_config(const std::vector<std::string>& args) {
  node_config cfg;
  cfg.node_name = host_name();
  CLI::App app{"healthtwin: a HealthTwin node (twins, ingest, alerts) with its RocksDB",
               "healthtwin"};
  app.set_version_flag("--version", "healthtwin 0.1.0");
  app.set_config("--config", "", "TOML or INI file with any of the options below (flags win)");
  app.allow_config_extras(false);

  int64_t checkpoint_ms = cfg.checkpoint_interval.count();
  int64_t checkpoint_spread_ms = cfg.checkpoint_spread.count();
  int64_t heartbeat_ms = cfg.heartbeat_timeout.count();
  int64_t skew_ms = cfg.max_clock_skew.count();
  int64_t escalate_ms = cfg.alert_escalate_after.count();
  int64_t device_check_ms = cfg.device_check_interval.count();
  int64_t passivate_ms = cfg.passivate_after.count();

  app.add_option("--node-name", cfg.node_name, "name of this node (default: host name)");
  app.add_option("--grpc-listen", cfg.grpc_listen, "gRPC API address (port 0: any free port)")
      ->check(listen_address)
      ->capture_default_str();
  app.add_option("--http-listen", cfg.http_listen, "HTTP address for /metrics, /healthz, /readyz")
      ->check(listen_address)
      ->capture_default_str();
  app.add_option("--data-dir", cfg.data_dir, "directory of the node's RocksDB")->capture_default_str();
  app.add_option("--shards", cfg.shards, "virtual shards; fixed for the life of a data directory")
      ->check(CLI::Range(1u, 65536u))
      ->capture_default_str();
  app.add_option("--sync-wal", cfg.sync_wal,
                 "fsync the write-ahead log before acknowledging (false: survives process "
                 "crashes only)")
      ->capture_default_str();
  app.add_option("--encryption-key-file", cfg.encryption_key_file,
                 "node key file (64 hex digits, mode 0600): encrypts every file of the data "
                 "directory with AES-256 (default: plaintext, for development)")
      ->check(CLI::ExistingFile);
  app.add_option("--pseudonym-key-file", cfg.pseudonym_key_file,
                 "without --encryption-key-file: key file (64 hex digits, mode 0600) of the secret "
                 "that patients' pseudonyms are keyed with; the members of a cluster share one "
                 "(default: a new data directory creates a random one)")
      ->check(CLI::ExistingFile)
      ->excludes("--encryption-key-file");
  app.add_option("--storage-statistics", cfg.storage_statistics,
                 "keep RocksDB's statistics tickers (exported as healthtwin_storage_events_total)")
      ->capture_default_str();
  app.add_option("--scheduler-threads", cfg.scheduler_threads, "actor scheduler worker threads")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  app.add_option("--checkpoint-interval-ms", checkpoint_ms,
                 "how often twins are snapshotted and the ingest log truncated")
      ->check(CLI::Range(int64_t{100}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--checkpoint-every-readings", cfg.checkpoint_every_readings,
                 "also checkpoint once this many readings were logged since the last "
                 "checkpoint (bounds the log and the replay after a crash)")
      ->check(CLI::Range(uint64_t{1'000}, uint64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--checkpoint-spread-ms", checkpoint_spread_ms,
                 "a checkpoint asks the shards to snapshot their twins one after another "
                 "over this time (at most a quarter of the interval), so its writes do not "
                 "delay the ingest log's fsyncs; 0: all at once")
      ->check(CLI::Range(int64_t{0}, int64_t{60'000}))
      ->capture_default_str();
  app.add_option("--heartbeat-timeout-ms", heartbeat_ms,
                 "a device is offline after this long without a reading")
      ->check(CLI::Range(int64_t{1'000}, int64_t{86'400'000}))
      ->capture_default_str();
  app.add_option("--max-clock-skew-ms", skew_ms,
                 "readings timestamped further in the future are rejected")
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--alert-escalate-after-ms", escalate_ms,
                 "unacknowledged HIGH alerts are re-notified with a higher escalation level "
                 "after this long")
      ->check(CLI::Range(int64_t{1'000}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--device-check-interval-ms", device_check_ms,
                 "how often patient twins look for devices that stopped sending")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}))
      ->capture_default_str();
  app.add_option("--passivate-after-ms", passivate_ms,
                 "a device or patient twin unused for this long is written and stopped; the "
                 "next reading or query activates it again (0: never)")
      ->check(CLI::Range(int64_t{0}, int64_t{86'400'000}))
      ->capture_default_str();
  int64_t retention_interval_ms = cfg.retention_interval.count();
  app.add_option("--retention-raw-days", cfg.retention_raw_days,
                 "raw readings (closed series chunks) are deleted after this many days")
      ->check(CLI::Range(int64_t{1}, int64_t{36'500}))
      ->capture_default_str();
  app.add_option("--retention-alert-days", cfg.retention_alert_days,
                 "resolved alerts and alert events are deleted after this many days")
      ->check(CLI::Range(int64_t{1}, int64_t{36'500}))
      ->capture_default_str();
  app.add_option("--retention-tenant", cfg.retention_tenants,
                 "per-tenant override TENANT=RAW_DAYS:ALERT_DAYS (repeatable)")
      ->check([](const std::string& v) -> std::string {
        auto eq = v.find('='), colon = v.find(':');
        if (eq == std::string::npos || eq == 0 || colon == std::string::npos || colon < eq)
          return "must be TENANT=RAW_DAYS:ALERT_DAYS";
        try {
          size_t used = 0;
          auto raw = std::stoll(v.substr(eq + 1, colon - eq - 1), &used);
          auto alerts = std::stoll(v.substr(colon + 1), &used);
          if (raw < 1 || alerts < 1 || raw > 36'500 || alerts > 36'500)
            return "days must be 1-36500";
        } catch (const std::exception&) {
          return "must be TENANT=RAW_DAYS:ALERT_DAYS";
        }
        return {};
      });
  app.add_option("--retention-interval-ms", retention_interval_ms, "how often retention is enforced")
      ->check(CLI::Range(int64_t{100}, int64_t{86'400'000}))
      ->capture_default_str();
  app.add_option("--tls-cert-file", cfg.tls_cert_file,
                 "PEM certificate chain served on the gRPC and HTTP listeners (TLS 1.2+)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key-file", cfg.tls_key_file, "PEM private key of --tls-cert-file")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-client-ca-file", cfg.tls_client_ca_file,
                 "PEM CA certificates: gRPC clients must present a certificate signed by one "
                 "(mutual TLS, e.g. for devices)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-reload-interval-s", cfg.tls_reload_interval_s,
                 "how often the certificate, key and CA files are read again, so that rotated ones serve "
                 "new connections without a restart (docs/operations.md); 0: read once at start")
      ->check(CLI::Range(0u, 86'400u))
      ->capture_default_str();
  app.add_option("--backup-dir", cfg.backup_dir,
                 "a directory for backups taken with ClusterService.BackupNode (twinctl cluster backup), "
                 "created at the first backup (its parent must exist); on the same file system as "
                 "--data-dir backups are hard links, made in seconds");
  app.add_option("--fhir-subscription-ca-file", cfg.fhir_subscription_ca_file,
                 "PEM CA certificates that FHIR subscribers' HTTPS endpoints are verified against "
                 "(default: the system's)")
      ->check(CLI::ExistingFile);
  std::string region_endpoints, region_routing = "redirect";
  app.add_option("--region", cfg.region,
                 "this node's region (docs/multi-region.md): patients homed here are stored here, "
                 "calls about others go to their home region; empty: no regions");
  app.add_option("--region-endpoints", region_endpoints,
                 "the other regions' API endpoints: REGION=HOST:PORT,... (TLS)");
  app.add_option("--region-routing", region_routing,
                 "a call about a twin homed in another region is forwarded there (forward) or "
                 "refused FAILED_PRECONDITION naming that region (redirect)")
      ->check(CLI::IsMember({"forward", "redirect"}))
      ->capture_default_str();
  app.add_option("--region-ca-file", cfg.region_ca_file,
                 "PEM CA that signed the other regions' API certificates (default: the system's)")
      ->check(CLI::ExistingFile);
  app.add_flag("--insecure-plaintext", cfg.insecure_plaintext,
               "serve without TLS (local development only; a warning is logged)");
  app.add_option("--auth-audience", cfg.auth_audience, "the aud claim bearer tokens must carry")
      ->capture_default_str();
  app.add_option("--auth-issuer", cfg.auth_issuer, "the iss claim bearer tokens must carry (optional)");
  app.add_option("--auth-public-key-file", cfg.auth_public_key_file,
                 "PEM public key that signs bearer tokens (RSA: RS256, EC P-256: ES256)")
      ->check(CLI::ExistingFile);
  app.add_option("--auth-jwks-file", cfg.auth_jwks_file,
                 "JWKS file with the keys that sign bearer tokens (chosen by kid)")
      ->check(CLI::ExistingFile);
  app.add_option("--auth-hs256-secret-file", cfg.auth_hs256_secret_file,
                 "shared HS256 secret (32+ bytes) for bearer tokens: development only")
      ->check(CLI::ExistingFile);
  app.add_option("--auth-reload-interval-s", cfg.auth_reload_interval_s,
                 "how often the token key file is read again, so that rotated keys take effect without a "
                 "restart (docs/operations.md); 0: read once at start")
      ->check(CLI::Range(0u, 86'400u))
      ->capture_default_str();
  app.add_option("--max-watches-per-principal", cfg.max_watches_per_principal,
                 "open WatchPatientTwin/WatchDeviceTwin streams one principal (tenant and subject) may hold")
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--max-watches", cfg.max_watches, "open twin watches this node serves in all")
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--rate-limit-calls-per-s", cfg.rate_limit_calls_per_s,
                 "calls per second each principal may make, ingest aside (bursts of twice that)")
      ->check(CLI::Range(0.1, 1e9))
      ->capture_default_str();
  app.add_option("--rate-limit-readings-per-s", cfg.rate_limit_readings_per_s,
                 "readings per second each principal may ingest (bursts of twice that)")
      ->check(CLI::Range(0.1, 1e9))
      ->capture_default_str();
  app.add_option("--rate-limit-device-readings-per-s", cfg.rate_limit_device_readings_per_s,
                 "readings per second a device token may ingest (bursts of twice that)")
      ->check(CLI::Range(0.1, 1e9))
      ->capture_default_str();
  std::string cluster_members, cluster_statefulset, cluster_service;
  uint32_t cluster_replicas = 0;
  int64_t probe_ms = cfg.cluster_probe_interval.count();
  int64_t down_after_ms = cfg.cluster_down_after.count();
  app.add_option("--cluster-name", cfg.cluster_name,
                 "name of the cluster; members must agree on it")
      ->capture_default_str();
  auto* members_option = app.add_option("--cluster-members", cluster_members,
                 "the members: NAME=HOST:PORT,... (peer listeners; this node's --node-name among "
                 "them); empty: a single node");
  members_option->excludes(app.add_option(
      "--cluster-statefulset", cluster_statefulset,
      "members are the pods SET-0..SET-(N-1) of this StatefulSet, reached as SET-i.SERVICE at "
      "the --cluster-listen port"));
  app.add_option("--cluster-service", cluster_service,
                 "the StatefulSet's headless Service (with --cluster-statefulset)");
  app.add_option("--cluster-replicas", cluster_replicas, "the StatefulSet's replicas")
      ->check(CLI::Range(1u, 1024u));
  app.add_option("--cluster-listen", cfg.cluster_listen,
                 "peer listener host:port for the other members (mutual TLS)")
      ->check(listen_address);
  app.add_option("--cluster-ca-file", cfg.cluster_ca_file,
                 "PEM CA that signed every member's certificate (--tls-cert-file)")
      ->check(CLI::ExistingFile);
  app.add_option("--cluster-probe-interval-ms", probe_ms, "how often members probe each other")
      ->check(CLI::Range(int64_t{50}, int64_t{60'000}))
      ->capture_default_str();
  app.add_option("--cluster-down-after-ms", down_after_ms,
                 "a member that has not answered for this long is down")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}))
      ->capture_default_str();
  std::string replication_members;
  int64_t election_ms = cfg.replication_election_timeout.count();
  int64_t commit_timeout_ms = cfg.replication_commit_timeout.count();
  app.add_option("--replication-factor", cfg.replication_factor,
                 "members holding each member's store (a Raft group); 1: not replicated")
      ->check(CLI::Range(1u, 7u))
      ->capture_default_str();
  app.add_option("--replication-listen", cfg.replication_listen,
                 "replication listener host:port (mutual TLS with the cluster CA)")
      ->check(listen_address);
  app.add_option("--replication-members", replication_members,
                 "the voters of this member's store: the member and its standbys, NAME=HOST:PORT,... "
                 "(their replication listeners)");
  app.add_option("--replication-self", cfg.replication_self,
                 "the voter this process is (default: --node-name; another name: a standby that serves "
                 "the member while it leads the member's store)");
  app.add_option("--replication-snapshot-entries", cfg.replication_snapshot_entries,
                 "a store's Raft log is truncated behind a snapshot every this many entries (a quarter kept "
                 "for voters that lag; one further behind gets a copy of the store)")
      ->check(CLI::Range(16u, 1'000'000u))
      ->capture_default_str();
  uint32_t standby_rank = 0, port_step = 100;
  app.add_option("--replication-standby-rank", standby_rank,
                 "with --cluster-statefulset: 0 for the pod's member; K for the standby of the member K "
                 "pods before it, on the member's ports + K x --replication-port-step (ADR 0039)")
      ->check(CLI::Range(0u, 6u))
      ->capture_default_str();
  app.add_option("--replication-port-step", port_step,
                 "with --cluster-statefulset: how far apart the ports of a pod's member and its standbys are")
      ->check(CLI::Range(1u, 10'000u))
      ->capture_default_str();
  std::string cluster_standbys;
  app.add_option("--cluster-standbys", cluster_standbys,
                 "where members' standbys serve while they lead: MEMBER=HOST:PORT,... (peer listeners; a "
                 "member may repeat)");
  app.add_option("--replication-election-ms", election_ms,
                 "a replicated store's leader silent this long is replaced (the failover time)")
      ->check(CLI::Range(int64_t{100}, int64_t{60'000}))
      ->capture_default_str();
  app.add_option("--replication-commit-timeout-ms", commit_timeout_ms,
                 "a write not committed by a majority within this is refused (and, if it may still "
                 "commit, the member restarts)")
      ->check(CLI::Range(int64_t{100}, int64_t{60'000}))
      ->capture_default_str();
  int64_t handoff_checkpoint_ms = cfg.handoff_checkpoint_timeout.count();
  int64_t handoff_stream_ms = cfg.handoff_stream_timeout.count();
  app.add_option("--handoff-chunk-bytes", cfg.handoff_chunk_bytes,
                 "bytes of records per chunk a hand-off streams to a shard's new owner")
      ->check(CLI::Range(uint64_t{64} << 10, uint64_t{64} << 20))
      ->capture_default_str();
  app.add_option("--handoff-checkpoint-timeout-ms", handoff_checkpoint_ms,
                 "longest wait for the checkpoint that precedes a hand-off")
      ->check(CLI::Range(int64_t{1'000}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--handoff-stream-timeout-ms", handoff_stream_ms,
                 "longest time streaming one hand-off step's shards may take")
      ->check(CLI::Range(int64_t{10'000}, int64_t{86'400'000}))
      ->capture_default_str();
  app.add_option("--port-file", cfg.port_file,
                 "write {\"grpc\":PORT,\"http\":PORT} here once ready (for tests and tooling)");
  app.add_option("--log-level", cfg.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", cfg.log_format,
                 "text, or json: one JSON object per line (time, level, thread, message, request_id)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  parse_outcome out;
  try {
    if (!reversed.empty())
      reversed.pop_back();  // program name
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream os, es;
    out.exit_code = app.exit(e, os, es);
    out.message = os.str() + es.str();
    if (out.exit_code != 0 && out.exit_code != static_cast<int>(CLI::ExitCodes::Success))
      out.exit_code = 2;
    return out;
  }
  if (cfg.node_name.empty()) {
    out.exit_code = 2;
    out.message = "--node-name: must not be empty\n";
    return out;
  }
  if (cfg.data_dir.empty()) {
    out.exit_code = 2;
    out.message = "--data-dir: must not be empty\n";
    return out;
  }
  auto refuse = [&](std::string message) {
    out.exit_code = 2;
    out.message = std::move(message) + "\n";
    return out;
  };
  if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty())
    return refuse("--tls-cert-file and --tls-key-file: set both or neither");
  if (!cfg.tls_client_ca_file.empty() && cfg.tls_cert_file.empty())
    return refuse("--tls-client-ca-file: needs --tls-cert-file and --tls-key-file");
  if (cfg.tls_cert_file.empty() && !cfg.insecure_plaintext)
    return refuse("--tls-cert-file: the listeners need a certificate and key "
                  "(or --insecure-plaintext for local development)");
  if (!cfg.tls_cert_file.empty() && cfg.insecure_plaintext)
    return refuse("--insecure-plaintext: contradicts --tls-cert-file");
  if (!cfg.auth_public_key_file.empty() + !cfg.auth_jwks_file.empty() +
          !cfg.auth_hs256_secret_file.empty() != 1)
    return refuse("--auth-public-key-file, --auth-jwks-file, --auth-hs256-secret-file: "
                  "set exactly one (every call needs a bearer token)");
  if (cfg.auth_audience.empty())
    return refuse("--auth-audience: must not be empty");
  if (!cluster_statefulset.empty()) {
    if (cluster_service.empty() || cluster_replicas == 0)
      return refuse("--cluster-statefulset: needs --cluster-service and --cluster-replicas");
    auto listen = split_host_port(cfg.cluster_listen);
    if (!listen)
      return refuse("--cluster-statefulset: needs --cluster-listen (its port is the members' port)");
    if (auto why = statefulset_standby({cluster_statefulset, cluster_service, cluster_replicas, standby_rank, port_step},
                                       listen->second, cfg);
        !why.empty())
      return refuse(why);
  } else if (standby_rank != 0) {
    return refuse("--replication-standby-rank: only with --cluster-statefulset (else name the voters: "
                  "--replication-self, --replication-members)");
  } else if (!cluster_members.empty()) {
    auto parsed = cluster::parse_members(cluster_members);
    if (!parsed.error.empty())
      return refuse("--cluster-members: " + parsed.error);
    cfg.cluster_members = std::move(parsed.members);
  }
  if (!cfg.cluster_members.empty()) {
    bool listed = false;
    for (auto& m : cfg.cluster_members)
      listed = listed || m.name == cfg.node_name;
    if (!listed)
      return refuse("--cluster-members: --node-name \"" + cfg.node_name + "\" is not among them");
    if (cfg.cluster_listen.empty())
      return refuse("--cluster-listen: a member needs a peer listener");
    if (cfg.cluster_ca_file.empty() && !cfg.insecure_plaintext)
      return refuse("--cluster-ca-file: members authenticate each other with certificates "
                    "signed by this CA");
    if (cfg.cluster_name.empty())
      return refuse("--cluster-name: must not be empty");
  }
  if (auto why = check_replication(replication_members, cluster_standbys, cfg); !why.empty())
    return refuse(why);
  if (auto why = parse_regions(region_endpoints, cfg); !why.empty())
    return refuse(why);
  cfg.region_forward = region_routing == "forward";
  cfg.cluster_probe_interval = std::chrono::milliseconds(probe_ms);
  cfg.cluster_down_after = std::chrono::milliseconds(down_after_ms);
  cfg.handoff_checkpoint_timeout = std::chrono::milliseconds(handoff_checkpoint_ms);
  cfg.handoff_stream_timeout = std::chrono::milliseconds(handoff_stream_ms);
  cfg.checkpoint_interval = std::chrono::milliseconds(checkpoint_ms);
  cfg.checkpoint_spread = std::chrono::milliseconds(checkpoint_spread_ms);
  cfg.heartbeat_timeout = std::chrono::milliseconds(heartbeat_ms);
  cfg.max_clock_skew = std::chrono::milliseconds(skew_ms);
  cfg.alert_escalate_after = std::chrono::milliseconds(escalate_ms);
  cfg.device_check_interval = std::chrono::milliseconds(device_check_ms);
  cfg.passivate_after = std::chrono::milliseconds(passivate_ms);
  cfg.replication_election_timeout = std::chrono::milliseconds(election_ms);
  cfg.replication_commit_timeout = std::chrono::milliseconds(commit_timeout_ms);
  cfg.retention_interval = std::chrono::milliseconds(retention_interval_ms);
  out.config = std::move(cfg);
  return out;
}

}  // namespace healthtwin::node
