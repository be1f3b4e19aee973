#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "actors/ingest/sequencer_jobs.hpp"

namespace healthtwin::actors {

/// The sequencer's inbox: any thread queues, the sequencer thread takes
/// everything queued at once (the next group commit). Readings are bounded
/// (`max_readings` queued and not yet taken); once stopped, nothing more is
/// queued and the sequencer drains what is left.
class job_queue {
public:
  enum class verdict { queued, overloaded, stopping };

  explicit job_queue(size_t max_readings) : max_readings_(max_readings) {}

  /// Queues an ingest request of `readings` readings (moved from `j`),
  /// unless that would exceed the bound or the queue stopped (`j` left
  /// untouched).
  verdict push_readings(ingest_job& j, size_t readings);

  /// Queues any other job; false (the job left untouched) once stopped.
  template <class Job>
  bool push(Job& j) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_)
        return false;
      jobs_.emplace_back(std::move(j));
    }
    cv_.notify_one();
    return true;
  }

  /// Waits up to `wait` for jobs, for stop() or for `wake()` to turn true
  /// (checked under the lock; wake_up() makes the sequencer check it), then
  /// moves every queued job to `out`. False once stopped and drained.
  bool take(std::vector<sequencer_job>& out, std::chrono::milliseconds wait, const std::function<bool()>& wake);

  /// Refuses new jobs from now on; false when already stopped.
  bool stop();

  /// Has take() look at its wake condition again.
  void wake_up() { cv_.notify_all(); }

private:
  const size_t max_readings_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<sequencer_job> jobs_;
  size_t readings_ = 0;
  bool stopping_ = false;
};

}  // namespace healthtwin::actors
