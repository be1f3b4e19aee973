#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "actors/cluster/shard_map.hpp"

namespace healthtwin::node {

/// Everything the `healthtwin` binary reads from its flags and config file.
/// Only the composition root reads configuration; it hands each module its
/// own settings struct.
struct node_config {
  std::string node_name;                       ///< default: host name
  std::string grpc_listen = "127.0.0.1:50051";  ///< host:port, port 0 = any free port
  std::string http_listen = "127.0.0.1:8080";   ///< host:port, port 0 = any free port
  std::string data_dir = "./data";
  uint32_t shards = 1024;                        ///< fixed per data directory
  bool sync_wal = true;                          ///< fsync the WAL before acks
  /// Node key file (64 hex digits, mode 0600): encrypts every RocksDB file
  /// with AES-256. Empty: plaintext (development only; a warning is logged).
  std::string encryption_key_file;
  std::string pseudonym_key_file;  ///< without a node key: the cluster's shared pseudonym secret
  bool storage_statistics = true;  ///< RocksDB tickers (healthtwin_storage_events_total)
  unsigned scheduler_threads = 2;                ///< CAF worker threads
  std::chrono::milliseconds checkpoint_interval{30'000};
  uint64_t checkpoint_every_readings = 5'000'000;  ///< ...or after this many readings
  std::chrono::milliseconds checkpoint_spread{2'000};  ///< shards snapshot over this time
  std::chrono::milliseconds heartbeat_timeout{60'000};
  std::chrono::milliseconds max_clock_skew{5 * 60'000};
  /// Unacknowledged HIGH alerts are re-notified (escalated) after this long.
  std::chrono::milliseconds alert_escalate_after{120'000};
  /// How often patient twins check their devices for silence.
  std::chrono::milliseconds device_check_interval{10'000};
  /// Twins unused for this long are passivated (snapshot written, actor
  /// stopped; docs/adr/0035); 0: never.
  std::chrono::milliseconds passivate_after{600'000};
  /// Retention (issue 4): raw readings and resolved alerts / alert events.
  int64_t retention_raw_days = 30;
  int64_t retention_alert_days = 6 * 365 + 2;
  /// Per-tenant overrides "tenant=raw_days:alert_days".
  std::vector<std::string> retention_tenants;
  std::chrono::milliseconds retention_interval{6 * 3'600'000};
  // Transport security (TLS 1.2+ on gRPC and HTTP).
  std::string tls_cert_file;       ///< PEM certificate chain of this node
  std::string tls_key_file;        ///< PEM private key of that certificate
  std::string tls_client_ca_file;  ///< set: clients must present a certificate it signed (mTLS)
  /// How often the certificate, key and CA files are read again (rotation
  /// without a restart); 0: read once at start.
  unsigned tls_reload_interval_s = 60;
  unsigned auth_reload_interval_s = 60;
  std::string fhir_subscription_ca_file;  ///< CAs of FHIR subscribers' endpoints (empty: the system's)
  std::string backup_dir;  ///< ClusterService.BackupNode writes here (empty: no backups)
  // Regions (docs/multi-region.md): this node's, and the others' API
  // endpoints. No region: every patient is held here.
  std::string region;
  std::map<std::string, std::string, std::less<>> region_endpoints;
  bool region_forward = false;  ///< --region-routing forward (else redirect)
  std::string region_ca_file;
  bool insecure_plaintext = false; ///< no TLS: local development only
  // Bearer tokens (exactly one key source).
  std::string auth_audience = "healthtwin";
  std::string auth_issuer;
  std::string auth_public_key_file;
  std::string auth_jwks_file;
  std::string auth_hs256_secret_file;
  double rate_limit_calls_per_s = 10'000;           ///< per principal, ingest aside
  size_t max_watches_per_principal = 10'000;
  size_t max_watches = 100'000;
  double rate_limit_readings_per_s = 1'000'000;    ///< per principal
  double rate_limit_device_readings_per_s = 100;   ///< per device token
  // Cluster (docs/cluster.md). No members: a single node owning every shard.
  std::string cluster_name = "healthtwin";
  /// The members: from --cluster-members, or a StatefulSet's pods.
  std::vector<cluster::member> cluster_members;
  std::string cluster_listen;  ///< peer listener host:port (mutual TLS)
  std::string cluster_ca_file; ///< CA of the members' certificates
  std::chrono::milliseconds cluster_probe_interval{1'000};
  std::chrono::milliseconds cluster_down_after{3'000};
  /// Shard hand-offs (services/peer/shard_handoff.hpp): bytes of records
  /// per chunk streamed to the new owner, longest wait for the checkpoint
  /// before one, longest time one step's stream may take.
  uint64_t handoff_chunk_bytes = uint64_t{1} << 20;
  std::chrono::milliseconds handoff_checkpoint_timeout{120'000};
  std::chrono::milliseconds handoff_stream_timeout{600'000};
  /// Replicated stores (docs/cluster.md "Replication", ADR 0038, 0039):
  /// each member's store is a Raft group of this many voters (1: not
  /// replicated): the member and its standbys, with their replication
  /// listeners in `replication_members`; this process is the voter
  /// `replication_self` (the member's name, or a standby's).
  uint32_t replication_factor = 1;
  std::string replication_listen;
  std::vector<cluster::member> replication_members;
  std::string replication_self;
  /// Peer listeners where members' standbys serve while they lead (a name
  /// may repeat): probed when the member's own address does not answer.
  std::vector<cluster::member> cluster_standbys;
  /// Raft snapshots every this many entries, keeping a quarter of them for
  /// followers; a voter further behind needs a copy of the store.
  uint32_t replication_snapshot_entries = 4096;
  std::chrono::milliseconds replication_election_timeout{1'000};
  std::chrono::milliseconds replication_commit_timeout{2'000};
  std::string port_file;  ///< if set: JSON {"grpc":p,"http":p} written once ready
  std::string log_level = "info";
  std::string log_format = "text";  ///< or "json" (services/logging)
};

/// Result of parsing: either a config to run with, or an exit code (after
/// --help/--version, or 2 after an error that was printed).
struct parse_outcome {
  std::optional<node_config> config;
  int exit_code = 0;
  std::string message;  ///< help text or error, for the caller to print
};

/// Parses flags and, with --config, a TOML/INI file (flags win). Unknown
/// keys, malformed values and out-of-range numbers are errors naming the
/// option.
parse_outcome parse_node_config(const std::vector<std::string>& args);

/// Splits "host:port" ("[v6]:port" too); nullopt when malformed.
std::optional<std::pair<std::string, uint16_t>> split_host_port(const std::string& s);

}  // namespace healthtwin::node
