#pragma once
// Runs a task every interval on a thread of its own until destroyed (the
// node's reloads: TLS files, token keys). The destructor wakes the thread
// and waits for a run in progress.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace healthtwin::node {

class periodic {
public:
  periodic(std::chrono::milliseconds interval, std::function<void()> task)
      : thread_([this, interval, task = std::move(task)] {
          std::unique_lock<std::mutex> lock{mtx_};
          while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
            lock.unlock();
            task();
            lock.lock();
          }
        }) {}

  ~periodic() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  periodic(const periodic&) = delete;
  periodic& operator=(const periodic&) = delete;

private:
  std::mutex mtx_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace healthtwin::node
