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

void watch_pump::at(clock::time_point when, std::weak_ptr<pumped> target) {
  bool first;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    first = due_.empty() || when < due_.begin()->first;
    due_.emplace(when, std::move(target));
  }
  if (first)
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
  return due_.size();
}

void watch_pump::run() {
  std::vector<std::weak_ptr<pumped>> now_due;
  std::unique_lock<std::mutex> lock{mtx_};
  while (!stopping_) {
    if (due_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto next = due_.begin()->first;
    if (next > clock::now()) {
      wake_.wait_until(lock, next);
      continue;
    }
    auto end = due_.upper_bound(clock::now());
    for (auto it = due_.begin(); it != end; ++it)
      now_due.push_back(std::move(it->second));
    due_.erase(due_.begin(), end);
    lock.unlock();
    for (auto& w : now_due)
      if (auto target = w.lock())
        target->refresh();
    now_due.clear();
    lock.lock();
  }
}

}  // namespace healthtwin::services
