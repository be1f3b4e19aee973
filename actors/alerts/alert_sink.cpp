// The queue between the alert hub and one subscriber (alert_hub.hpp).
#include "actors/alerts/alert_hub.hpp"

namespace healthtwin::actors {

void alert_sink::push(const alert_event& e) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_)
      return;
    if (queue_.size() >= capacity_) {
      overflowed_ = true;
      closed_ = true;
      queue_.clear();
    } else {
      queue_.push_back(e);
    }
  }
  cv_.notify_one();
}

std::optional<alert_event> alert_sink::pop(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock{mtx_};
  cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || closed_; });
  if (queue_.empty())
    return std::nullopt;
  auto e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

void alert_sink::close() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    closed_ = true;
  }
  cv_.notify_all();
}

bool alert_sink::overflowed() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return overflowed_;
}

bool alert_sink::closed() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return closed_;
}

}  // namespace healthtwin::actors
