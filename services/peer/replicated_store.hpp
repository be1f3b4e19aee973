#pragma once
// A store replicated by a Raft group (docs/adr/0038): the store's write
// batches are the group's entries. On the leader, store::write proposes the
// batch and returns once it is durable on a majority and applied; every
// replica (the leader too) applies committed batches in the group's order.

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "services/peer/raft_group.hpp"
#include "storage/store.hpp"

namespace healthtwin::services {

class replicated_store final : public raft_state_machine, public storage::write_replicator {
public:
  /// `commit_timeout`: how long a write waits for its commit before it
  /// fails with storage::errc::no_quorum (it may still commit later).
  replicated_store(storage::store& store, std::chrono::milliseconds commit_timeout);

  /// The group writes are proposed to (before the store's first write);
  /// nullptr: writes are refused from now on (before the group stops).
  void attach(raft_group* group);

  /// Called (on the writing thread) when a write failed but may still be
  /// committed — its proposal timed out, or its leader was deposed. The
  /// member's memory no longer matches what its store will hold: the node
  /// restarts (ADR 0038).
  void on_in_doubt(std::function<void(const std::string& why)> f) { in_doubt_ = std::move(f); }

  /// store::write's path (any thread but the group's).
  caf::error replicate(std::string_view batch) override;

  void apply(uint64_t index, std::string_view entry) override;
  /// The store's WAL synced, then the index applied (8 bytes): everything up
  /// to it is durable in RocksDB, so raft may drop its log behind it.
  std::string snapshot() override;
  /// Nothing to do when this store already holds the snapshot's index. A
  /// replica further behind needs the leader's files (a store copy, not
  /// built yet): it stops applying (apply_failure() says why).
  bool restore(std::string_view snapshot) override;

  /// The first failure to apply a committed batch (empty while none): the
  /// replica no longer matches its group, and the node must stop.
  std::string apply_failure() const;
  /// The group's snapshot index this replica is behind (it needs a copy of
  /// a store that holds it, store_copy.hpp; apply_failure() says so too);
  /// 0 when it is not.
  uint64_t needs_copy() const;

  /// Writes through replicate() since start, by outcome, and the seconds
  /// the committed ones waited (for the node's metrics).
  struct write_counts {
    uint64_t committed = 0, refused = 0, in_doubt = 0;
    double commit_seconds = 0;
  };
  write_counts counts() const;

private:
  storage::store& store_;
  std::chrono::milliseconds commit_timeout_;
  std::atomic<raft_group*> group_{nullptr};
  std::function<void(const std::string&)> in_doubt_;
  mutable std::mutex mutex_;
  std::string apply_failure_;
  uint64_t needs_copy_ = 0;
  write_counts counts_;
};

}  // namespace healthtwin::services
