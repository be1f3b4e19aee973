#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <caf/actor.hpp>

#include "actors/shard/shard.hpp"
#include "actors/twin/twin.hpp"

namespace healthtwin::actors {

/// Splits a committed batch into the work of each shard it touches — a
/// device's entries to the device's shard, entries with a patient to the
/// patient's — leaving out shards this node does not own (another member
/// has them, or a replayed record of a shard handed over since). Calls
/// fn(shard, work) once per touched shard, in the order first touched.
class batch_splitter {
public:
  batch_splitter(uint32_t shards, std::function<bool(uint32_t)> owns)
    : nshards_(shards), owns_(std::move(owns)), slot_(shards, -1) {}

  template <class Fn>
  void split(const committed_batch_ptr& b, Fn fn);

private:
  uint32_t nshards_;
  std::function<bool(uint32_t)> owns_;
  std::vector<int32_t> slot_;  // per shard: its index in the works of the batch being split, -1: none
  std::vector<shard_work> works_;
  std::vector<uint32_t> touched_;
};

/// Hands committed batches to the shards in log order, counting each
/// message in `flow.pending` (backpressure). The log replay's batches go a
/// group of 64 at a time (one message per shard for many batches).
class batch_dispatch {
public:
  batch_dispatch(const std::vector<shard_actor>& shards, ingest_flow& flow, std::function<bool(uint32_t)> owns)
    : shards_(shards), flow_(flow), splitter_(static_cast<uint32_t>(shards.size()), std::move(owns)) {}

  void dispatch(const committed_batch_ptr& b);
  void dispatch_replayed(const committed_batch_ptr& b);
  /// Sends what the replay holds.
  void send_replayed();

private:
  static constexpr size_t replay_group_records = 64;
  const std::vector<shard_actor>& shards_;
  ingest_flow& flow_;
  batch_splitter splitter_;
  std::vector<replay_work> replay_held_;
  size_t replay_held_records_ = 0;
};

template <class Fn>
void batch_splitter::split(const committed_batch_ptr& b, Fn fn) {
  works_.clear();
  touched_.clear();
  auto slot_of = [&](uint32_t shard) -> shard_work& {
    auto& s = slot_[shard];
    if (s < 0) {
      s = static_cast<int32_t>(works_.size());
      works_.push_back(shard_work{b, {}, {}});
      touched_.push_back(shard);
    }
    return works_[static_cast<size_t>(s)];
  };
  for (uint32_t i = 0; i < b->entries.size(); ++i) {
    auto& e = b->entries[i];
    if (!e.clinician && !e.patient_only) {
      auto ds = models::shard_of(e.device, nshards_);
      if (!owns_ || owns_(ds))
        slot_of(ds).device_entries.push_back(i);
    }
    if (!e.patient.empty()) {
      auto ps = models::shard_of(e.patient, nshards_);
      if (owns_ && !owns_(ps))
        continue;  // its owner, another member, has it as a patient part
      slot_of(ps).patient_entries.push_back(i);
    }
  }
  for (auto s : touched_) {
    fn(s, std::move(works_[static_cast<size_t>(slot_[s])]));
    slot_[s] = -1;
  }
}

}  // namespace healthtwin::actors
