#pragma once
// Ends the calls made on a caller's behalf when the caller goes away or the
// node stops. gRPC's synchronous server tells a handler that its call was
// cancelled only when asked (ServerContext::IsCancelled), and a handler
// blocked reading another member's stream cannot ask: one thread asks for
// every relayed stream of the node, every interval, and sleeps when there
// is none.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace healthtwin::services {

class stream_watch {
public:
  /// True once the caller went away (or the node stops).
  using gone_check = std::function<bool()>;
  /// Ends the call made on its behalf (ClientContext::TryCancel).
  using end_action = std::function<void()>;

  explicit stream_watch(std::chrono::milliseconds every = std::chrono::milliseconds(100));
  ~stream_watch();
  stream_watch(const stream_watch&) = delete;
  stream_watch& operator=(const stream_watch&) = delete;

  /// Watched until the ticket goes; `end` runs at most once, never after.
  class ticket {
  public:
    ticket(ticket&& other) noexcept : watch_(other.watch_), id_(other.id_) { other.watch_ = nullptr; }
    ticket& operator=(ticket&&) = delete;
    ~ticket();

  private:
    friend class stream_watch;
    ticket(stream_watch* w, uint64_t id) : watch_(w), id_(id) {}
    stream_watch* watch_;
    uint64_t id_;
  };

  /// Runs `end` once `gone` is true (checked every interval, on the watch's
  /// thread, under its lock: both must be quick and must not block).
  [[nodiscard]] ticket watch(gone_check gone, end_action end);

  /// Streams watched now.
  size_t watched() const;

private:
  struct entry {
    gone_check gone;
    end_action end;
  };
  void run();
  void forget(uint64_t id);

  const std::chrono::milliseconds every_;
  mutable std::mutex mtx_;
  std::condition_variable wake_;
  std::map<uint64_t, entry> entries_;
  uint64_t next_id_ = 0;
  bool closing_ = false;
  std::thread thread_;  // started with the first watch
};

}  // namespace healthtwin::services
