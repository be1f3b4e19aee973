#include "actors/ingest/batch_dispatch.hpp"

#include <caf/all.hpp>

namespace healthtwin::actors {

void batch_dispatch::dispatch(const committed_batch_ptr& b) {
  splitter_.split(b, [&](uint32_t shard, shard_work&& w) {
    flow_.pending.fetch_add(1, std::memory_order_relaxed);
    caf::anon_send(shards_[shard], apply_atom::value, std::move(w));
  });
}

void batch_dispatch::dispatch_replayed(const committed_batch_ptr& b) {
  if (replay_held_.empty())
    replay_held_.resize(shards_.size());
  splitter_.split(b, [&](uint32_t shard, shard_work&& w) { replay_held_[shard].works.push_back(std::move(w)); });
  if (++replay_held_records_ == replay_group_records)
    send_replayed();
}

void batch_dispatch::send_replayed() {
  for (size_t s = 0; s < replay_held_.size(); ++s)
    if (!replay_held_[s].works.empty()) {
      flow_.pending.fetch_add(1, std::memory_order_relaxed);
      caf::anon_send(shards_[s], apply_atom::value, std::move(replay_held_[s]));
      replay_held_[s] = replay_work{};
    }
  replay_held_records_ = 0;
}

}  // namespace healthtwin::actors
