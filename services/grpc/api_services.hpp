#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/alerts/alert_hub.hpp"
#include "actors/shard/shard.hpp"
#include "services/grpc/region_settings.hpp"
#include "services/peer/handoff_settings.hpp"

namespace grpc {
class ServerBuilder;
class Status;
}


namespace grpc {
class Channel;
}  // namespace grpc

namespace healthtwin::services {
class cluster_metrics;
}

namespace prometheus {
class Registry;
}

namespace healthtwin::storage {
class store;
class audit_log;
}

namespace healthtwin::services {
class token_verifier;
class owner_forwarding;
struct peer_handlers;
}

namespace healthtwin::cluster {
class membership;
struct ownership_change;
}

namespace healthtwin::actors {
class twin_index;
class twin_changes;
class ingest_sequencer;
struct twin_counters;
}  // namespace healthtwin::actors

namespace healthtwin::services {

/// Settings of the public gRPC API. None can change at run time.
struct api_settings {
  /// A device is online when its last reading arrived within this window.
  /// Default 60 s.
  std::chrono::milliseconds heartbeat_timeout{60'000};
  /// Longest time a query waits for a twin or the alert hub. Default 5 s
  /// (a shorter client deadline wins).
  std::chrono::milliseconds call_timeout{5'000};
  /// Readings timestamped further ahead of the node's clock are rejected.
  /// Default 5 min.
  std::chrono::milliseconds max_clock_skew{5 * 60'000};
  /// Most readings in one ingest request. Default 10,000.
  uint32_t max_readings_per_request = 10'000;
  /// Largest ingest request accepted, bytes. Default 4 MiB (the transport
  /// refuses anything over 4 times this with RESOURCE_EXHAUSTED).
  size_t max_request_bytes = size_t{4} << 20;
  /// Batches a stream may have in flight before reading pauses. Default 16.
  uint32_t max_stream_in_flight = 16;
  /// Calls per second each principal may make (ingest aside); bursts of
  /// twice that. Default 10,000.
  double principal_calls_per_s = 10'000;
  /// Open twin watches: per principal (tenant and subject) and per node;
  /// one more is refused RESOURCE_EXHAUSTED.
  size_t max_watches_per_principal = 10'000;
  size_t max_watches = 100'000;
  /// Readings per second each principal may ingest; bursts of twice that.
  /// Default 1,000,000 (about what one node commits).
  double principal_readings_per_s = 1'000'000;
  /// The same for a device token (one device). Default 100.
  double device_readings_per_s = 100;
  /// This node's name (ClusterService).
  std::string node_name = "node-0";
  /// Number of virtual shards.
  uint32_t shards = 1024;
  /// --cluster-name; empty for a node without --cluster-members.
  std::string cluster_name;
  /// --backup-dir: where ClusterService.BackupNode writes (empty: refused).
  std::string backup_dir;
  /// How this member hands shards off (in a cluster).
  handoff_settings handoff;
  /// How often firmware rollouts take their next step. Default 1 s.
  std::chrono::milliseconds rollout_step{1'000};
  /// This node's region and the other regions' endpoints (none by default).
  region_settings regions;
};

/// What the services call into. Everything must outlive the services.
struct api_context {
  caf::actor_system* sys = nullptr;
  storage::store* store = nullptr;
  actors::ingest_sequencer* sequencer = nullptr;
  const std::vector<actors::shard_actor>* shards = nullptr;
  actors::alert_hub_actor alert_hub;
  actors::twin_counters* counters = nullptr;
  /// Patient summaries that twin queries filter and order.
  actors::twin_index* index = nullptr;
  /// What watches subscribe to (push-based twin watches).
  actors::twin_changes* changes = nullptr;
  /// False until recovery finished; calls get UNAVAILABLE meanwhile.
  const std::atomic<bool>* ready = nullptr;
  /// The node's audit log (opened): every call is recorded in it.
  storage::audit_log* audit = nullptr;
  /// Verifies callers' bearer tokens.
  const token_verifier* tokens = nullptr;
  /// The cluster's members, their health and the shard map (this node
  /// alone when it runs without --cluster-members).
  cluster::membership* members = nullptr;
  /// Sends calls for other members' shards to their owner; null for a
  /// single node.
  owner_forwarding* forwarding = nullptr;
  /// The node's metrics: per-method gRPC series and refusals by reason
  /// (none when null).
  prometheus::Registry* metrics = nullptr;
  /// Forwarded calls and hand-off phases are counted here (none when null).
  cluster_metrics* cluster_probe = nullptr;
  /// A channel to this node's own API in process (calls made with a
  /// caller's token, as FhirService composes them); null until it serves.
  std::function<std::shared_ptr<grpc::Channel>()> self_channel;
};

/// The healthtwin.v1 services: Registry, Ingest (callback API: acks never
/// hold a thread), Twin, Alert and Cluster. Translates between the public
/// protobufs and the actors' own messages; validates every field.
class api_services {
public:
  api_services(api_settings settings, api_context context);
  ~api_services();

  /// Metadata (headers) a call may carry: a bearer token beyond the
  /// verifier's 8 KiB limit is answered UNAUTHENTICATED up to this size;
  /// beyond it the transport refuses the call (RESOURCE_EXHAUSTED).
  static constexpr size_t max_metadata_bytes = size_t{4} << 20;

  /// Registers every service on `builder` and sets the metadata limit;
  /// this object must outlive the server built from it.
  void register_with(grpc::ServerBuilder& builder);

  /// Graceful drain, before grpc::Server::Shutdown: new calls get
  /// UNAVAILABLE, streams stop reading and end once their accepted batches
  /// are acknowledged, alert streams end; waits until no call is in progress
  /// or `grace` has passed. Returns the calls still in progress.
  int shutdown(std::chrono::milliseconds grace);

  /// What the PeerService answers from this node: its patients' summaries
  /// (from its index), the patient parts and device links of its patients,
  /// and its part in shard hand-offs.
  peer_handlers peer_data();

  /// In a cluster: takes up the shards a change of this node's cluster
  /// state gave it and lets go of those it took (the prober calls it when
  /// a member's state was newer).
  void on_ownership_change(const cluster::ownership_change& change);

  /// In a cluster, at start after the join: drops the stored copy of shards
  /// a hand-off gave away before the node stopped, if it did not drop it.
  void drop_owed_shards();

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::services
