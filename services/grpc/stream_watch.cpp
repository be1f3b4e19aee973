#include "services/grpc/stream_watch.hpp"

namespace healthtwin::services {

stream_watch::stream_watch(std::chrono::milliseconds every) : every_(every) {}

stream_watch::~stream_watch() {
  {
    std::lock_guard<std::mutex> g{mtx_};
    closing_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

stream_watch::ticket::~ticket() {
  if (watch_)
    watch_->forget(id_);
}

stream_watch::ticket stream_watch::watch(gone_check gone, end_action end) {
  std::lock_guard<std::mutex> g{mtx_};
  auto id = next_id_++;
  entries_.emplace(id, entry{std::move(gone), std::move(end)});
  if (!thread_.joinable())
    thread_ = std::thread([this] { run(); });
  wake_.notify_all();
  return ticket{this, id};
}

void stream_watch::forget(uint64_t id) {
  std::lock_guard<std::mutex> g{mtx_};
  entries_.erase(id);
}

size_t stream_watch::watched() const {
  std::lock_guard<std::mutex> g{mtx_};
  return entries_.size();
}

void stream_watch::run() {
  std::unique_lock<std::mutex> lock{mtx_};
  while (!closing_) {
    if (entries_.empty()) {
      wake_.wait(lock, [this] { return closing_ || !entries_.empty(); });
      continue;
    }
    for (auto& [id, e] : entries_)
      if (e.end && e.gone()) {
        e.end();
        e.end = nullptr;  // once
      }
    wake_.wait_for(lock, every_, [this] { return closing_; });
  }
}

}  // namespace healthtwin::services
