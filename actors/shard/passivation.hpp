#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

namespace healthtwin::actors {

/// A shard's clock for idle twins (docs/adr/0035): it sweeps its twins
/// every quarter of the idle time, and a twin's last use is the number of
/// the sweep period it fell in (4 bytes per twin, no clock read per
/// message). A twin is idle once five sweeps passed since its last use: it
/// was unused at least `after_ms`, at most 1.25 times that.
class passivation_clock {
public:
  /// `after_ms` 0: twins are never passivated.
  explicit passivation_clock(int64_t after_ms) : after_ms_(after_ms) {}

  bool enabled() const noexcept { return after_ms_ > 0; }
  std::chrono::milliseconds sweep_interval() const noexcept {
    return std::chrono::milliseconds{std::max<int64_t>(after_ms_ / periods, 25)};
  }
  /// The stamp of a use now.
  uint32_t now() const noexcept { return sweeps_; }
  void sweep() noexcept { ++sweeps_; }
  bool idle(uint32_t used) const noexcept { return sweeps_ - used > periods; }

private:
  static constexpr int64_t periods = 4;
  int64_t after_ms_;
  uint32_t sweeps_ = 0;
};

/// When the shard must activate passivated patients again although nothing
/// is sent to them: a device of theirs would be reported offline then. A
/// passivated patient costs an entry here only while one of its devices is
/// not offline yet. Entries are not removed when the patient comes back
/// earlier: the wake-up of a live twin is skipped.
class wake_table {
public:
  void add(std::string name, int64_t at_ms) { heap_.emplace(at_ms, std::move(name)); }

  /// Calls `wake(name)` for every entry due at `now_ms`, and drops them.
  void take_due(int64_t now_ms, const std::function<void(const std::string&)>& wake) {
    while (!heap_.empty() && heap_.top().first <= now_ms) {
      wake(heap_.top().second);
      heap_.pop();
    }
  }

  /// Drops every entry (the shard's twins were handed to another member).
  void clear() { heap_ = {}; }

private:
  using entry = std::pair<int64_t, std::string>;
  std::priority_queue<entry, std::vector<entry>, std::greater<>> heap_;
};

}  // namespace healthtwin::actors
