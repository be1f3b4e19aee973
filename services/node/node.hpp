#pragma once
// A HealthTwin node: starts in named phases, serves until SIGTERM/SIGINT,
// and stops in the order that keeps every acknowledged reading — each
// phase pushes what undoes it, and any exit unwinds those last first:
//   storage      the store (RocksDB) and the audit log
//   credentials  bearer-token keys and the listeners' TLS
//   http         metrics, /healthz, /readyz (answering "not ready")
//   replication  with --replication-factor > 1: the replicated store; waits
//                until this process leads it (ADR 0038, 0039)
//   membership   the cluster state this node persisted, or founds
//   actors       actor system, alert hub, shards, ingest sequencer, retention
//   api          the public gRPC API
//   cluster      peer listener, probes, join (a member of a cluster only)
//   recovery     the ingest log replayed; then ready
// Stopping: not ready and in-flight calls finished; peers and the API
// closed; the sequencer drained, snapshotted and checkpointed; the actors
// stopped; HTTP closed; the store flushed after a clean stop.

#include <signal.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <prometheus/registry.h>

#include "actors/twin/twin.hpp"
#include "services/node/node_config.hpp"
#include "services/node/node_settings.hpp"
#include "services/node/stop_stack.hpp"

namespace grpc {
class Channel;
class Server;
class Service;
class ServerCredentials;
}  // namespace grpc

namespace healthtwin::storage {
class audit_log;
class retention_sweeper;
class store;
}  // namespace healthtwin::storage

namespace healthtwin::cluster {
class membership;
}

namespace healthtwin::services {
class api_services;
class cluster_metrics;
class cluster_prober;
class http_server;
class owner_forwarding;
class process_metrics;
class token_verifier;
}  // namespace healthtwin::services

namespace healthtwin::actors {
class ingest_sequencer;
}

namespace healthtwin::node {

class storage_metrics;
class certificate_expiry_gauge;
class tls_stage;
class periodic;
class replication_stage;

/// Exit codes of the `healthtwin` binary.
enum exit_code : int {
  exit_ok = 0,
  exit_config = 2,     ///< configuration, credentials, or a cluster refusing this node
  exit_storage = 3,    ///< the data directory cannot be opened or recovered
  exit_listen = 4,     ///< a listener cannot bind
  exit_storage_failed = 5,  ///< stopped after failed storage writes
  exit_write_in_doubt = 6,  ///< a replicated write may have committed after it failed: restart (ADR 0038)
  exit_deposed = 7,  ///< another voter leads the replicated store: main starts the process again (ADR 0039)
  exit_install_copy = 8,  ///< a copy of the leader's store is staged: main starts the process again (ADR 0040)
};

class node {
public:
  explicit node(node_config cfg);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Starts, serves until SIGTERM or SIGINT, stops; the process's exit code.
  int run();

private:
  int open_storage();
  int load_credentials();
  int start_replication();
  int load_membership();
  int start_http();
  int start_actors();
  int start_api();
  int join_cluster();
  int recover();
  int wait_for_stop(bool& deposed);
  /// After the stop actions ran: the actors, then the actor system, go.
  void release_actors();

  node_config cfg_;
  node_settings settings_;
  sigset_t stop_signals_{};

  std::unique_ptr<storage::store> store_;
  std::unique_ptr<replication_stage> replication_;  // after the audit log's writer, before the store
  std::unique_ptr<storage::audit_log> audit_;
  std::unique_ptr<services::token_verifier> tokens_;
  std::unique_ptr<periodic> token_reload_;  // stopped before tokens_ goes
  std::shared_ptr<grpc::ServerCredentials> grpc_creds_;
  prometheus::Registry metrics_;
  std::atomic<bool> ready_{false};
  bool fresh_ = false;  ///< no persisted cluster state (a new data directory)
  bool stop_before_serving_ = false;  ///< a stop signal (or a staged store copy) came while a phase waited
  std::unique_ptr<cluster::membership> members_;
  std::unique_ptr<storage_metrics> storage_gauges_;
  std::unique_ptr<certificate_expiry_gauge> certificate_gauge_;
  std::unique_ptr<tls_stage> api_tls_, peer_tls_;  // null with --insecure-plaintext
  std::unique_ptr<services::process_metrics> process_gauges_;
  std::unique_ptr<services::cluster_metrics> cluster_gauges_;
  // What /metrics refreshes once made (HTTP serves before they are).
  std::atomic<services::cluster_metrics*> cluster_gauges_ready_{nullptr};
  std::atomic<replication_stage*> replication_gauges_{nullptr};
  std::unique_ptr<services::http_server> http_;
  std::mutex self_channel_mtx_;
  std::shared_ptr<grpc::Channel> self_channel_;  // the API in process (HTTP, FhirService)
  std::unique_ptr<services::fhir_subscriptions> subscriptions_;

  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  actors::ingest_flow flow_;
  actors::twin_counters counters_;
  actors::twin_index index_;  ///< patient summaries for twin queries
  actors::twin_changes changes_;  ///< who watches which twin (push-based watches)
  actors::twin_context twins_;
  std::vector<actors::shard_actor> shards_;
  std::unique_ptr<actors::ingest_sequencer> sequencer_;
  bool sequencer_started_ = false;
  std::unique_ptr<storage::retention_sweeper> sweeper_;

  std::unique_ptr<services::owner_forwarding> forwarding_;
  std::unique_ptr<services::api_services> api_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  std::unique_ptr<grpc::Service> peer_service_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::unique_ptr<services::cluster_prober> prober_;

  stop_stack stops_;  ///< last member: unwound before any part goes
};

}  // namespace healthtwin::node
