#include "services/grpc/watch_pump.hpp"

#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace healthtwin::services {

void watch_metrics::register_in(prometheus::Registry& registry) {
  auto& open_family = prometheus::BuildGauge()
                          .Name("healthtwin_twin_watches")
                          .Help("Open WatchPatientTwin / WatchDeviceTwin streams served here")
                          .Register(registry);
  auto& reads_family = prometheus::BuildCounter()
                           .Name("healthtwin_twin_watch_reads_total")
                           .Help("Twin reads made for watches (pushed: one per change, none while idle)")
                           .Register(registry);
  for (int k = 0; k < 2; ++k) {
    const char* kind = k == 0 ? "patient" : "device";
    open[k] = &open_family.Add({{"kind", kind}});
    reads[k] = &reads_family.Add({{"kind", kind}});
  }
}

watch_pump::watch_pump() : thread_([this] { run(); }) {}

watch_pump::~watch_pump() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void watch_pump::at(clock::time_point when, std::weak_ptr<pumped> target, urgency u) {
  bool earlier;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    earlier = (changes_.empty() || when < changes_.begin()->first) &&
              (timed_.empty() || when < timed_.begin()->first);
    (u == urgency::change ? changes_ : timed_).emplace(when, std::move(target));
  }
  if (earlier)
    wake_.notify_one();
}

bool watch_pump::take(const std::string& principal, size_t per_principal, size_t total) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& mine = open_[principal];
  if (mine >= per_principal || open_total_ >= total) {
    if (mine == 0)
      open_.erase(principal);
    return false;
  }
  ++mine;
  ++open_total_;
  return true;
}

void watch_pump::give(const std::string& principal) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = open_.find(principal);
  if (it == open_.end())
    return;
  --open_total_;
  if (--it->second == 0)
    open_.erase(it);
}

size_t watch_pump::queued() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return changes_.size() + timed_.size();
}

void watch_pump::run() {
  std::vector<std::weak_ptr<pumped>> now_due;
  std::unique_lock<std::mutex> lock{mtx_};
  while (!stopping_) {
    auto now = clock::now();
    // Every change due, else a slice of the time-driven refreshes due.
    for (auto it = changes_.begin(); it != changes_.end() && it->first <= now; it = changes_.erase(it))
      now_due.push_back(std::move(it->second));
    if (now_due.empty())
      for (auto it = timed_.begin(); it != timed_.end() && it->first <= now && now_due.size() < time_slice;
           it = timed_.erase(it))
        now_due.push_back(std::move(it->second));
    if (now_due.empty()) {
      if (changes_.empty() && timed_.empty()) {
        wake_.wait(lock);
      } else {
        auto next = changes_.empty()  ? timed_.begin()->first
                    : timed_.empty() ? changes_.begin()->first
                                     : std::min(changes_.begin()->first, timed_.begin()->first);
        wake_.wait_until(lock, next);
      }
      continue;
    }
    lock.unlock();
    ++batch_;
    for (auto& w : now_due)
      if (auto target = w.lock())
        target->refresh();
    now_due.clear();
    lock.lock();
  }
}

}  // namespace healthtwin::services
