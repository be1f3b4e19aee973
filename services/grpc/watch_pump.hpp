#pragma once
// The thread that runs every twin watch's reads (twin_watch.cpp): a watch
// asks to be refreshed at a time — now, after a change, no sooner than its
// min_interval after its last message, at its caller's deadline, when a
// device it shows would turn offline — and the pump calls it then. One
// thread for every watch of the node; it sleeps while nothing is due.

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace healthtwin::services {

/// The watches' metrics, per kind of twin (0 patient, 1 device): open
/// watches and twin reads made for them (none while their twins do not
/// change). Null members: not counted.
struct watch_metrics {
  prometheus::Gauge* open[2] = {nullptr, nullptr};
  prometheus::Counter* reads[2] = {nullptr, nullptr};
  /// Registers healthtwin_twin_watches and healthtwin_twin_watch_reads_total.
  void register_in(prometheus::Registry& registry);
};

/// What the pump refreshes.
class pumped {
public:
  virtual ~pumped() = default;
  /// Runs on the pump's thread; may block briefly (it reads a twin).
  virtual void refresh() = 0;
};

class watch_pump {
public:
  using clock = std::chrono::steady_clock;

  watch_pump();
  ~watch_pump();
  watch_pump(const watch_pump&) = delete;
  watch_pump& operator=(const watch_pump&) = delete;

  /// How urgent a refresh is. A change a watch must show comes first; a
  /// refresh due to time (a device's heartbeat running out, which may
  /// come for thousands of watches at once) runs in slices between them.
  enum class urgency : uint8_t { change, time };
  /// Refreshes of `urgency::time` taken at once before changes are looked
  /// at again: a change waits behind at most this many reads.
  static constexpr size_t time_slice = 32;

  /// Refreshes `target` at `when` (now if past), unless it is gone by then.
  void at(clock::time_point when, std::weak_ptr<pumped> target, urgency u = urgency::change);

  /// Refreshes due now or later.
  size_t queued() const;

  /// The batch of refreshes the pump runs now: refreshes in one batch may
  /// share what they read. Read on the pump's thread only.
  uint64_t batch() const { return batch_; }

  watch_metrics metrics;

  /// Open watches, per principal and in all: take() a slot before a watch
  /// opens (false: over `per_principal` or `total`), give() it back at its end.
  bool take(const std::string& principal, size_t per_principal, size_t total);
  void give(const std::string& principal);

private:
  void run();

  mutable std::mutex mtx_;
  std::condition_variable wake_;
  using schedule = std::multimap<clock::time_point, std::weak_ptr<pumped>>;
  schedule changes_, timed_;  // by urgency
  std::unordered_map<std::string, size_t> open_;  // per principal, under mtx_
  size_t open_total_ = 0;
  bool stopping_ = false;
  uint64_t batch_ = 0;  // the pump's thread only
  std::thread thread_;
};

}  // namespace healthtwin::services
