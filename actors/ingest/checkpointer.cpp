#include "actors/ingest/checkpointer.hpp"

#include <thread>

#include <spdlog/spdlog.h>

#include "healthtwin/internal/records.pb.h"
#include "storage/ingest_log.hpp"
#include "storage/key_codec.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

checkpointer::checkpointer(parts p, checkpoint_schedule schedule)
    : parts_(std::move(p)), schedule_(std::move(schedule)) {}

checkpointer::~checkpointer() {
  if (write_.valid())
    write_.wait();
}

bool checkpointer::wants_turn() const {
  auto p = phase_.load();
  return p == phase::snapshotted || p == phase::written || p == phase::failed;
}

bool checkpointer::due(uint64_t position, uint64_t uncheckpointed) const {
  return idle() && schedule_.due(uncheckpointed) && position > checkpointed_;
}

void checkpointer::start(uint64_t position, uint64_t accepted, const std::vector<uint32_t>& only,
                         std::function<void(caf::error)> done) {
  auto round = std::make_shared<checkpoint_round>();
  round->position = target_ = position;
  accepted_at_target_ = accepted;
  round->on_done = [this](bool ok) {
    phase_ = ok ? phase::snapshotted : phase::failed;
    parts_.wake();
  };
  phase_ = phase::running;
  schedule_.started();
  if (!only.empty()) {
    partial_shards_ = only;
    partial_done_ = std::move(done);
    auto in = parts_.fence.mask(only);
    windows_ = parts_.dir.take_dirty(&in);
    round->shards_left = static_cast<uint32_t>(only.size());
    for (auto s : only)
      parts_.ask(s, round);
    return;
  }
  schedule_.scheduled();
  // Windows as of the target: a replay of the log tail merges into them.
  windows_ = parts_.dir.take_dirty();
  round->shards_left = parts_.fence.shards();
  in_progress_ = std::move(round);
  shards_asked_ = 0;
  ask_shards();
}

// Asks the shards whose turn has come within the spread (all of them when
// `all`).
void checkpointer::ask_shards(bool all) {
  if (!in_progress_)
    return;
  auto due = schedule_.shards_due(all);
  for (; shards_asked_ < due; ++shards_asked_)
    parts_.ask(static_cast<uint32_t>(shards_asked_), in_progress_);
  if (shards_asked_ == parts_.fence.shards())
    in_progress_ = nullptr;
}

// The helper thread's part: the windows in batches of 1,000, then the
// checkpoint position, fsynced with them (the log behind it is
// range-deleted). One batch of all windows held RocksDB's write queue, and
// with it the ingest log's commits, for 100 ms and more; windows written
// ahead of the position are newer than it and merge with a replay of the
// log tail. Windows of shards handed over since are left out (their copy is
// dropped). A window a replay left unread is merged with the stored one
// here (only checkpoints write windows, so the stored one cannot change
// meanwhile).
caf::error checkpointer::write() {
  auto& store = parts_.store;
  storage::write_batch wb{store};
  for (auto& [name, replayed, partial, superseded] : windows_) {
    auto shard = storage::key_codec::window_shard(name, store.shards());
    if (!parts_.fence.owns(shard))
      continue;
    auto window = replayed;
    if (partial && !superseded) {
      if (auto err = parts_.dir.load_window(name, window))
        return err;
      window.merge(replayed);
    }
    internal::SequenceWindowState w;
    w.set_highest(window.highest());
    for (auto bits : window.seen_bits())
      w.add_seen(bits);
    wb.put(storage::column::twins, storage::key_codec::window_key(shard, name), w.SerializeAsString());
    if (wb.count() == 1'000) {
      if (auto err = store.write(wb, false))
        return err;
      wb.clear();
    }
  }
  if (!partial_shards_.empty())  // a hand-off's checkpoint leaves the log as it is
    return store.write(wb, true);
  storage::ingest_log::advance_checkpoint(wb, target_);
  if (auto err = store.write(wb, true))
    return err;
  // The records behind the checkpoint are deleted; their disk comes back now
  // instead of whenever a compaction reaches them (tens of MB per checkpoint
  // under load). A failure here costs disk, not data.
  if (auto err = parts_.log.reclaim(target_))
    spdlog::warn("reclaiming the ingest log behind checkpoint {} failed: {}", target_, storage::describe(err));
  return caf::none;
}

void checkpointer::advance(uint64_t accepted_now) {
  ask_shards();
  switch (phase_.load()) {
    case phase::failed:
      spdlog::warn("checkpoint at log position {} failed (a snapshot write failed); retrying later", target_);
      failed(caf::make_error(storage::errc::io_error, std::string{"a twin snapshot write failed"}));
      break;
    case phase::snapshotted:
      snapshotted_at_ = schedule_.now();
      phase_ = phase::writing;
      write_ = std::async(std::launch::async, [this] {
        auto err = write();
        phase_ = phase::written;
        parts_.wake();
        return err;
      });
      break;
    case phase::written:
      if (auto err = write_.get()) {
        spdlog::warn("writing checkpoint failed: {}", storage::describe(err));
        failed(err);
      } else {
        written(accepted_now);
      }
      break;
    default:
      break;
  }
}

// The checkpoint failed: its windows are written with the next one.
void checkpointer::failed(const caf::error& err) {
  parts_.dir.restore_dirty(windows_);
  windows_.clear();
  phase_ = phase::idle;
  if (!partial_shards_.empty())
    end_partial(err);
}

void checkpointer::written(uint64_t accepted_now) {
  auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  auto snapshot_ms = ms(snapshotted_at_ - schedule_.started_at());
  auto windows_ms = ms(schedule_.now() - snapshotted_at_);
  if (!partial_shards_.empty()) {
    spdlog::info("hand-off checkpoint of shards at log position {}: twins snapshotted in {:.1f} ms, {} sequence "
                 "windows written in {:.1f} ms",
                 target_, snapshot_ms, windows_.size(), windows_ms);
    windows_.clear();
    phase_ = phase::idle;
    end_partial(caf::none);
    return;
  }
  spdlog::info("checkpoint at log position {}: twins snapshotted in {:.1f} ms, {} sequence windows written in "
               "{:.1f} ms",
               target_, snapshot_ms, windows_.size(), windows_ms);
  windows_.clear();
  checkpointed_ = target_;
  accepted_at_checkpoint_ = accepted_at_target_;
  parts_.probe.on_checkpoint(checkpointed_);
  parts_.probe.set_uncheckpointed(accepted_now - accepted_at_checkpoint_);
  phase_ = phase::idle;
}

// A hand-off's checkpoint ended (written, or failed with `failure`).
void checkpointer::end_partial(caf::error failure) {
  partial_shards_.clear();
  auto done = std::move(partial_done_);
  partial_done_ = nullptr;
  if (done)
    done(std::move(failure));
}

void checkpointer::complete(uint64_t accepted_now) {
  ask_shards(true);
  for (;;) {
    advance(accepted_now);
    auto p = phase_.load();
    if (p == phase::idle)
      return;
    if (p == phase::writing)
      write_.wait();
    else if (p == phase::running)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace healthtwin::actors
