#pragma once
// Who watches which twins, and the news that a twin may have changed: what
// feeds WatchPatientTwin and WatchDeviceTwin (services/grpc/twin_watch)
// instead of each watcher polling. The places a twin changes say so — the
// shards as they route readings, registry reloads, resolutions and
// erasures to it; the registry commit for devices; the alert hub for the
// owners of alerts it published — and each listener of that name runs.
// Thread-safe; one relaxed load when nobody watches.

#include <atomic>
#include <cstdint>
#include <functional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace healthtwin::actors {

class twin_changes {
public:
  /// Runs on the thread that reports the change (an actor's, the
  /// sequencer's): must be quick and must not block.
  using listener = std::function<void()>;

  /// `fn` runs on every change of `name` until unsubscribe(id).
  uint64_t subscribe(std::string name, listener fn);
  void unsubscribe(uint64_t id);

  /// `name`'s twin may have changed.
  void touched(std::string_view name) const {
    if (watched_.load(std::memory_order_relaxed) > 0)
      notify(name);
  }

  /// Listeners now.
  size_t watched() const { return watched_.load(std::memory_order_relaxed); }

private:
  void notify(std::string_view name) const;

  struct hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, std::vector<std::pair<uint64_t, listener>>, hash, std::equal_to<>> by_name_;
  std::unordered_map<uint64_t, std::string> names_;  // id -> name
  uint64_t next_ = 1;
  std::atomic<size_t> watched_{0};
};

}  // namespace healthtwin::actors
