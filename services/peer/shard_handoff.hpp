#pragma once
// Moving shards between the members of a cluster (docs/adr/0014-shard-hand-off.md,
// docs/cluster.md "Hand-off"). Part of the peer layer: it reaches the
// node's sequencer, alert hub, twin index and store through handoff_parts,
// never through the public API's code.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <grpcpp/grpcpp.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/cluster/handoff_plan.hpp"
#include "actors/cluster/membership.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "healthtwin/internal/peer.grpc.pb.h"
#include "healthtwin/v1/cluster.pb.h"
#include "services/peer/handoff_settings.hpp"

namespace caf {
class actor_system;
}
namespace healthtwin::actors {
class twin_index;
}
namespace healthtwin::storage {
class store;
}

namespace healthtwin::services {

class cluster_metrics;
class owner_forwarding;

/// What of the node a hand-off works on; all set, but `probe` (no metrics
/// when null). They outlive the shard_handoff.
struct handoff_parts {
  caf::actor_system* sys = nullptr;
  storage::store* store = nullptr;
  actors::ingest_sequencer* sequencer = nullptr;
  actors::alert_hub_actor alert_hub;
  actors::twin_index* index = nullptr;
  /// False until recovery finished.
  const std::atomic<bool>* ready = nullptr;
  cluster::membership* members = nullptr;
  owner_forwarding* forwarding = nullptr;
  cluster_metrics* probe = nullptr;
};

/// What else lives in a shard besides its twins and must follow it: the
/// firmware rollouts whose name is in the shard (services/grpc's
/// rollout_manager). Each gets a filter accepting the names in the shards
/// concerned. Unset members are skipped.
struct shard_residents {
  using names = std::function<bool(const std::string&)>;
  /// Before the shards' records are streamed away: stop changing them.
  std::function<void(const names&)> let_go;
  /// The shards were gained, or a hand-off of them was abandoned: load them.
  std::function<void(const names&)> take_up;
  /// The shards were given away.
  std::function<void(const names&)> gone;
};

/// A change of members as ClusterService.ChangeMembers asked for it, its
/// fields checked by the caller: the new member list (non-empty, unique
/// names) and the most shards moved in one step (1..256).
struct member_change {
  std::vector<cluster::member> target;
  uint32_t shards_per_step = 16;
};

/// A member's part in moving shards, whichever role it plays:
///  - any member: after its cluster state changed (a member's newer state
///    merged, the cluster's state taken at join, a hand-off of its own) it
///    takes up the shards it gained — stale windows and twins forgotten,
///    open alerts and silences loaded, patients in the twin index — and
///    lets go in memory of those it lost (on_change);
///  - the old owner (PeerService.HandOffShards): fences the shards in the
///    ingest sequencer (their writes answer UNAVAILABLE, retry), checkpoints,
///    streams each shard's records to the new owner, gives the shards to it
///    (persisted), tells it, forgets them and drops its copy;
///  - the new owner (PeerService.ReceiveShard, one stream per step): drops
///    whatever stale copy it held of each shard, writes the records
///    (snapshots restarted at its own log position) and answers once they
///    are durable (one sync at the end);
///  - the member running ClusterService.ChangeMembers: spreads the new
///    member list, asks each old owner to hand over its moving shards a
///    step at a time, spreads each step's result, then the final list.
/// Thread-safe; one hand-off and one change at a time per member.
class shard_handoff {
public:
  shard_handoff(handoff_parts parts, handoff_settings settings = {});

  /// Set once, before the node serves.
  void set_residents(shard_residents residents) { residents_ = std::move(residents); }

  /// Takes up the shards `change` gave this node and lets go of those it
  /// took (in memory; a hand-off drops the stored copy itself). Blocks
  /// until done.
  void on_change(const cluster::ownership_change& change);

  /// Before this node owns `shards` (membership::before_gaining): forgets
  /// any stale windows and twins it holds of them, so that what it commits
  /// for them starts from their stored state.
  void before_gaining(const std::vector<uint32_t>& shards);

  /// PeerService.UpdateClusterState: merge, persist, take up, answer.
  grpc::Status update_state(const internal::ClusterStateRecord& req,
                            internal::ClusterStateRecord* resp);
  /// PeerService.HandOffShards, on the shards' owner.
  grpc::Status hand_off(const internal::HandOffRequest& req, internal::HandOffReport* resp);
  /// PeerService.ReceiveShard, on the new owner.
  grpc::Status receive(grpc::ServerContext& call, grpc::ServerReader<internal::ShardChunk>* reader,
                       internal::ShardReceipt* resp);
  /// ClusterService.ChangeMembers (after the caller's access check and
  /// the request's validation; member_change.cpp).
  grpc::Status change_members(const member_change& change, v1::ChangeMembersResponse* resp);

  /// At start: drops the stored copy of shards handed over by a hand-off
  /// that stopped before its drop (persisted as owed), unless this node
  /// owns them again.
  void drop_owed();

private:
  grpc::Status push_state(uint32_t member, const cluster::cluster_state& state,
                          std::chrono::milliseconds timeout, cluster::cluster_state* theirs = nullptr);
  grpc::Status stream_shards(internal::PeerService::Stub& to, const std::string& to_name,
                             const std::vector<uint32_t>& shards, uint64_t& records, uint64_t& bytes);
  /// Accepts the names in `shards`.
  shard_residents::names shard_names(const std::vector<uint32_t>& shards) const;
  /// Merges `theirs` into this member's state (persisted) and takes up what
  /// that changed (on_change); `error` says why it could not be persisted.
  void merge_state(const cluster::cluster_state& theirs, std::string& error);
  void ask_hub_to(bool take, const std::vector<uint32_t>& shards);
  /// Merges every other member's state into this one's (first step of a change).
  void merge_every_state();
  /// Runs one step of a change; its moves are added to `resp`.
  grpc::Status run_step(const cluster::handoff_step& step, v1::ChangeMembersResponse* resp);

  handoff_parts parts_;
  handoff_settings settings_;
  shard_residents residents_;
  std::mutex handoff_mtx_;  // one HandOffShards at a time
  std::mutex change_mtx_;   // one ChangeMembers at a time
};

}  // namespace healthtwin::services
