#include "actors/ingest/job_queue.hpp"

namespace healthtwin::actors {

job_queue::verdict job_queue::push_readings(ingest_job& j, size_t readings) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_)
      return verdict::stopping;
    if (readings_ + readings > max_readings_)
      return verdict::overloaded;
    readings_ += readings;
    jobs_.emplace_back(std::move(j));
  }
  cv_.notify_one();
  return verdict::queued;
}

bool job_queue::take(std::vector<sequencer_job>& out, std::chrono::milliseconds wait,
                     const std::function<bool()>& wake) {
  std::unique_lock<std::mutex> lock{mtx_};
  cv_.wait_for(lock, wait, [&] { return !jobs_.empty() || stopping_ || wake(); });
  if (jobs_.empty() && stopping_)
    return false;
  out.swap(jobs_);
  readings_ = 0;
  return true;
}

bool job_queue::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_)
      return false;
    stopping_ = true;
  }
  cv_.notify_all();
  return true;
}

}  // namespace healthtwin::actors
