#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/cluster/cluster_state.hpp"
#include "actors/cluster/shard_map.hpp"

namespace healthtwin::cluster {

/// What this node knows of a member's health from its probes.
enum class member_state : uint8_t {
  unknown,  ///< not heard from yet
  up,       ///< answered the last probe (or probed us) within down_after
  down,     ///< its last probe failed, or silent for longer than down_after
  refused,  ///< answers, but places twins differently (shard count or hash)
};

struct member_health {
  member_state state = member_state::unknown;
  bool ready = false;       ///< it had replayed its log (serves calls)
  int64_t last_seen_ms = 0; ///< wall clock of its last answer; 0: never
  std::string error;        ///< why it is down or refused
  uint16_t api_port = 0;    ///< its public gRPC port, from its answers; 0: unknown
  /// The peer address its last answer came from: its own, or a standby's
  /// that serves it (ADR 0039); empty: its listed address.
  std::string serving_address;
};

/// The shards a change of the cluster state gave this node or took from it.
struct ownership_change {
  bool changed = false;  ///< the state is another one (persisted, published)
  std::vector<uint32_t> gained;
  std::vector<uint32_t> lost;
};

/// The cluster as this node sees it: the replicated cluster_state (member
/// list and shard owners, which hand-offs change at run time) and each
/// member's health, updated by the prober and by incoming peer hellos.
///
/// Members are numbered in the order this node learnt them (the state's
/// list first, this node next if it is not in it): a number keeps naming
/// the same member for the life of the process, also after the member was
/// removed from the list (`listed` false). map() hands out the current
/// shard map as an immutable snapshot.
///
/// Thread-safe. owns() is lock-free (the ingest sequencer asks it per
/// device); changes of the state are serialised and persisted (through
/// `persist`) before anyone sees them.
class membership {
public:
  /// `persist` writes a new state durably before it is published (empty:
  /// not persisted, tests).
  using persist_fn = std::function<std::string(const cluster_state&)>;

  membership(cluster_state state, member self, std::chrono::milliseconds down_after,
             persist_fn persist = {});

  /// The current shard map (members by number, owner of every shard).
  std::shared_ptr<const shard_map> map() const;
  /// The current cluster state (a copy).
  cluster_state state() const;
  /// cluster_state::digest() of the current state (cheap: kept).
  std::string digest() const;
  /// cluster_state::founding() of the current state.
  std::string founding() const;
  uint32_t shards() const noexcept { return shards_; }
  uint32_t self() const noexcept { return self_; }
  const member& self_member() const noexcept { return self_member_; }

  /// True when this node owns `shard` (< shards()). Lock-free.
  bool owns(uint32_t shard) const noexcept {
    return owned_[shard].load(std::memory_order_acquire);
  }

  /// Merges `other` (of the same cluster: cluster_state::incompatible is
  /// empty) into the state, persists and publishes the result. An error
  /// (persisting failed) leaves the state as it was.
  ownership_change merge(const cluster_state& other, std::string& error);
  /// Replaces the state with `other` entirely: a node that joins an
  /// existing cluster takes its state. Same contract as merge().
  ownership_change adopt(const cluster_state& other, std::string& error);
  /// Applies `change` to a copy of the state (a hand-off, a new member
  /// list), persists and publishes it.
  ownership_change update(const std::function<void(cluster_state&)>& change, std::string& error);

  /// Called by every change that gives this node shards, with those shards,
  /// before this node is seen to own them (nothing commits for them here
  /// until it returns): clears whatever stale state the node holds of them.
  void before_gaining(std::function<void(const std::vector<uint32_t>& shards)> fn);

  /// Member `m` answered a probe at `now_ms`, serving its public API on
  /// `api_port` of its peer host: the peer address `via` (a standby's), or
  /// its listed one when empty.
  void answered(uint32_t m, bool ready, int64_t now_ms, uint16_t api_port = 0, std::string via = {});
  /// A probe of member `m` failed (unreachable, timeout).
  void failed(uint32_t m, std::string error);
  /// Member `m` places twins differently: never treated as up.
  void refused(uint32_t m, std::string why, int64_t now_ms);

  /// Every known member's health as of `now_ms` (this node: up), by number.
  std::vector<member_health> health(int64_t now_ms) const;

  /// host:port of member `m`'s public API (the host it last answered
  /// from), once it answered; empty before.
  std::string api_address(uint32_t m) const;
  /// The peer address member `m` last answered from (its listed one until
  /// a standby answered for it); empty for a member without an address.
  std::string peer_address(uint32_t m) const;

private:
  // Builds the map of `s` (learning new members) and the owned flags;
  // returns what this node gained and lost. Holds mtx_.
  ownership_change publish(cluster_state s);
  // The peer address member `m` answers at: a standby's, or its listed one.
  // Holds mtx_.
  const std::string& serving(uint32_t m) const;

  uint32_t shards_;
  member self_member_;
  uint32_t self_ = 0;
  std::chrono::milliseconds down_after_;
  persist_fn persist_;
  std::function<void(const std::vector<uint32_t>&)> before_gaining_;
  std::unique_ptr<std::atomic<bool>[]> owned_;
  std::mutex change_mtx_;  // serialises changes (persist, then publish)
  mutable std::mutex mtx_;
  cluster_state state_;
  std::string digest_;
  std::vector<member> known_;  // every member ever known, by number
  std::shared_ptr<const shard_map> map_;
  std::vector<member_health> records_;
};

}  // namespace healthtwin::cluster
