#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <vector>

#include <caf/error.hpp>

#include "actors/ingest/checkpoint_schedule.hpp"
#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/ingest_probe.hpp"
#include "actors/ingest/shard_fence.hpp"
#include "actors/twin/twin.hpp"

namespace healthtwin::storage {
class store;
class ingest_log;
}  // namespace healthtwin::storage

namespace healthtwin::actors {

/// Snapshots the twins and truncates the ingest log behind them, in phases
/// that never run on the sequencer's thread, which goes on committing and
/// acknowledging meanwhile:
///   idle → running: the shards are asked (spread over the schedule's
///          spread) to snapshot their dirty twins; the last one to finish
///          ends the round (snapshotted, or failed);
///   snapshotted → writing: a helper thread writes the sequence windows
///          changed up to the checkpoint and the new checkpoint position,
///          fsynced, and reclaims the log behind it;
///   written (or failed) → idle: the sequencer takes the result on its
///          next turn (advance()). A failed checkpoint's windows are
///          written with the next one.
/// A hand-off's checkpoint (start() with `only` shards) snapshots just
/// those shards at once and writes their windows, leaving the log's
/// checkpoint where it is; its `done` hears how it ended.
///
/// The clock is the schedule's (injected); shards are asked through `ask`.
/// Sequencer thread only, except wants_turn() and checkpointed().
class checkpointer {
public:
  using ask_fn = std::function<void(uint32_t shard, const checkpoint_round_ptr&)>;

  struct parts {
    storage::store& store;
    storage::ingest_log& log;
    device_directory& dir;
    const shard_fence& fence;
    ingest_probe& probe;
    ask_fn ask;                  ///< asks one shard to snapshot for a round
    std::function<void()> wake;  ///< a phase ended on another thread: call advance() soon
  };

  checkpointer(parts p, checkpoint_schedule schedule);
  ~checkpointer();

  /// The log position of the last checkpoint (set at start by the replay).
  uint64_t checkpointed() const { return checkpointed_; }
  void set_checkpointed(uint64_t position) { checkpointed_ = position; }

  bool idle() const { return phase_.load() == phase::idle; }
  /// A phase ended on another thread: the sequencer should call advance().
  bool wants_turn() const;
  /// Shards of the node's checkpoint are still to be asked (advance()
  /// asks them as the spread goes by).
  bool asking() const { return static_cast<bool>(in_progress_); }

  /// Whether the node's checkpoint is due: by time, by `uncheckpointed`
  /// readings, or asked for, and the log moved on since the last one.
  bool due(uint64_t position, uint64_t uncheckpointed) const;
  /// The next checkpoint is wanted as soon as possible.
  void request_now() { schedule_.request_now(); }

  /// Starts a checkpoint at log `position`, `accepted` readings committed
  /// so far: the node's, or a hand-off's of `only` those shards. Idle only.
  void start(uint64_t position, uint64_t accepted, const std::vector<uint32_t>& only = {},
             std::function<void(caf::error)> done = nullptr);
  /// Asks the shards still to ask at once (a hand-off waits, or a stop).
  void hurry() { ask_shards(true); }
  /// Moves the checkpoint in progress on when its current phase ended.
  void advance(uint64_t accepted_now);
  /// Drives the checkpoint in progress to its end (blocks; at stop).
  void complete(uint64_t accepted_now);

  /// Readings committed up to the last checkpoint (since start).
  uint64_t accepted_at_checkpoint() const { return accepted_at_checkpoint_; }

private:
  enum class phase : int { idle, running, snapshotted, writing, written, failed };

  void ask_shards(bool all = false);
  caf::error write();
  void failed(const caf::error& err);
  void written(uint64_t accepted_now);
  void end_partial(caf::error failure);

  parts parts_;
  checkpoint_schedule schedule_;
  std::atomic<phase> phase_{phase::idle};
  uint64_t target_ = 0;
  uint64_t checkpointed_ = 0;
  // Readings committed (since start) up to the target / the last checkpoint.
  uint64_t accepted_at_target_ = 0;
  uint64_t accepted_at_checkpoint_ = 0;
  checkpoint_schedule::clock::time_point snapshotted_at_;
  // The windows changed up to the checkpoint in progress, copied when it
  // started; written with it by the helper thread.
  std::vector<window_copy> windows_;
  // A hand-off's checkpoint: its shards and whom to tell (empty: the
  // checkpoint in progress, if any, is the node's).
  std::vector<uint32_t> partial_shards_;
  std::function<void(caf::error)> partial_done_;
  // The node's round while shards are still to be asked.
  checkpoint_round_ptr in_progress_;
  size_t shards_asked_ = 0;
  // Declared last: destroying it waits for the helper thread.
  std::future<caf::error> write_;
};

}  // namespace healthtwin::actors
