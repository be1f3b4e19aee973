#include "services/peer/replicated_store.hpp"

#include <future>

#include <spdlog/spdlog.h>

#include "storage/errc.hpp"

namespace healthtwin::services {

namespace {

std::string encode_index(uint64_t index) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((index >> (8 * i)) & 0xff);
  return out;
}

}  // namespace

replicated_store::replicated_store(storage::store& store, std::chrono::milliseconds commit_timeout)
    : store_(store), commit_timeout_(commit_timeout) {}

caf::error replicated_store::replicate(std::string_view batch) {
  if (!group_)
    return caf::make_error(storage::errc::no_quorum, std::string{"the store's group is not running"});
  if (auto failure = apply_failure(); !failure.empty())
    return caf::make_error(storage::errc::io_error, "this replica stopped applying: " + failure);
  auto answer = std::make_shared<std::promise<raft_commit>>();
  auto committed = answer->get_future();
  group_->propose(std::string{batch}, [answer](const raft_commit& c) { answer->set_value(c); });
  if (committed.wait_for(commit_timeout_) != std::future_status::ready)
    return caf::make_error(storage::errc::no_quorum,
                           "not committed within " + std::to_string(commit_timeout_.count()) + " ms");
  auto c = committed.get();
  if (!c.committed())
    return caf::make_error(storage::errc::no_quorum, c.error);
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
  return encode_index(store_.replicated_index());
}

bool replicated_store::restore(std::string_view snapshot) {
  if (snapshot.size() != 8)
    return false;
  uint64_t index = 0;
  for (int i = 0; i < 8; ++i)
    index |= uint64_t{static_cast<uint8_t>(snapshot[i])} << (8 * i);
  if (store_.replicated_index() >= index)
    return true;
  spdlog::error("replication: this replica holds batches up to {}, the group's snapshot is at {}: it needs the "
                "leader's files, which a replica cannot fetch yet",
                store_.replicated_index(), index);
  return false;
}

std::string replicated_store::apply_failure() const {
  std::lock_guard lock{mutex_};
  return apply_failure_;
}

}  // namespace healthtwin::services
