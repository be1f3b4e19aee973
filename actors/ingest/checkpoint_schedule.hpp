#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace healthtwin::actors {

/// The checkpointer's decisions in time, with the clock injected (a unit
/// test advances it without sleeping): when the node's next checkpoint is
/// due — `interval` after the last one started, as soon as
/// `every_readings` were committed since, or at once when asked (an
/// erasure waits for one) — and, once one started, how many shards it
/// should have asked to snapshot by now: spread evenly over `spread`
/// (at most a quarter of the interval), so the snapshot writes reach the
/// disk as a trickle beside the ingest log's fsyncs.
class checkpoint_schedule {
public:
  using clock = std::chrono::steady_clock;
  using now_fn = std::function<clock::time_point()>;

  checkpoint_schedule(std::chrono::milliseconds interval, uint64_t every_readings, std::chrono::milliseconds spread,
                      size_t shards, now_fn now = [] { return clock::now(); })
    : interval_(interval), every_readings_(every_readings),
      spread_(std::min(spread, interval / 4)), shards_(shards), now_(std::move(now)), next_(now_()) {}

  /// Whether the node's checkpoint is due, `readings_since` committed since
  /// the last one.
  bool due(uint64_t readings_since) const { return now_() >= next_ || readings_since >= every_readings_; }

  /// The node's checkpoint starts now: the next is due an interval later.
  void scheduled() { next_ = now_() + interval_; }

  /// A checkpoint is wanted as soon as possible.
  void request_now() { next_ = now_(); }

  /// A checkpoint (the node's or a hand-off's) starts its snapshots now.
  void started() { started_ = now_(); }

  /// How many shards (from the first) the checkpoint in progress should
  /// have asked by now: at least one, all once the spread has passed, all
  /// when `all` (a stop).
  size_t shards_due(bool all = false) const {
    auto spread = spread_.count();
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now_() - started_).count();
    if (all || spread <= 0 || elapsed >= spread)
      return shards_;
    return std::max<size_t>(1, shards_ * static_cast<size_t>(elapsed) / static_cast<size_t>(spread));
  }

  clock::time_point started_at() const { return started_; }
  clock::time_point now() const { return now_(); }

private:
  std::chrono::milliseconds interval_;
  uint64_t every_readings_;
  std::chrono::milliseconds spread_;
  size_t shards_;
  now_fn now_;
  clock::time_point next_;
  clock::time_point started_{};
};

}  // namespace healthtwin::actors
