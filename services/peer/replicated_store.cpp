#include "services/peer/replicated_store.hpp"

#include <future>

#include <spdlog/spdlog.h>

#include "storage/errc.hpp"
#include "storage/key_codec.hpp"

namespace healthtwin::services {

replicated_store::replicated_store(storage::store& store, std::chrono::milliseconds commit_timeout)
    : store_(store), commit_timeout_(commit_timeout) {}

void replicated_store::attach(raft_group* group) { group_.store(group); }

caf::error replicated_store::replicate(std::string_view batch) {
  auto count = [&](uint64_t write_counts::*outcome, double seconds = 0) {
    std::lock_guard lock{mutex_};
    ++(counts_.*outcome);
    counts_.commit_seconds += seconds;
  };
  auto* group = group_.load();
  if (!group) {
    count(&write_counts::refused);
    return caf::make_error(storage::errc::no_quorum, std::string{"the store's group is not running"});
  }
  if (auto failure = apply_failure(); !failure.empty())
    return caf::make_error(storage::errc::io_error, "this replica stopped applying: " + failure);
  auto t0 = std::chrono::steady_clock::now();
  auto answer = std::make_shared<std::promise<raft_commit>>();
  auto committed = answer->get_future();
  group->propose(std::string{batch}, [answer](const raft_commit& c) { answer->set_value(c); });
  auto doubt = [&](const std::string& why) {
    count(&write_counts::in_doubt);
    if (in_doubt_)
      in_doubt_(why);
    return caf::make_error(storage::errc::no_quorum, why);
  };
  if (committed.wait_for(commit_timeout_) != std::future_status::ready)
    return doubt("not committed within " + std::to_string(commit_timeout_.count()) + " ms");
  auto c = committed.get();
  if (!c.committed()) {
    if (c.in_doubt)
      return doubt(c.error);
    count(&write_counts::refused);
    return caf::make_error(storage::errc::no_quorum, c.error);
  }
  count(&write_counts::committed, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (auto failure = apply_failure(); !failure.empty())
    return caf::make_error(storage::errc::io_error, "committed but not applied here: " + failure);
  return caf::none;
}

void replicated_store::apply(uint64_t index, std::string_view entry) {
  if (!apply_failure().empty())
    return;
  if (auto err = store_.apply_replicated(index, entry)) {
    auto why = storage::describe(err);
    spdlog::critical("replication: a committed batch ({}) could not be applied: {}", index, why);
    std::lock_guard lock{mutex_};
    apply_failure_ = why;
  }
}

std::string replicated_store::snapshot() {
  if (auto err = store_.sync_wal())
    spdlog::error("replication: syncing the store before a snapshot failed: {}", storage::describe(err));
  std::string out;
  storage::key_codec::put_u64(out, store_.replicated_index());
  return out;
}

bool replicated_store::restore(std::string_view snapshot) {
  if (snapshot.size() != 8)
    return false;
  auto index = storage::key_codec::get_u64(snapshot);
  if (store_.replicated_index() >= index)
    return true;
  // Raft gives no way to say "not yet": a refused snapshot is offered again
  // and again (and libraft 0.15 leaks its buffer array on each refusal).
  // Taken, it marks this replica as stopped, so nothing after it is applied
  // out of order.
  auto why = "this replica holds batches up to " + std::to_string(store_.replicated_index()) +
             " and the group's snapshot is at " + std::to_string(index) + ": it needs a copy of the leader's store";
  spdlog::warn("replication: {}", why);
  std::lock_guard lock{mutex_};
  if (apply_failure_.empty())
    apply_failure_ = why;
  needs_copy_ = std::max(needs_copy_, index);
  return true;
}

uint64_t replicated_store::needs_copy() const {
  std::lock_guard lock{mutex_};
  return needs_copy_;
}

replicated_store::write_counts replicated_store::counts() const {
  std::lock_guard lock{mutex_};
  return counts_;
}

std::string replicated_store::apply_failure() const {
  std::lock_guard lock{mutex_};
  return apply_failure_;
}

}  // namespace healthtwin::services
