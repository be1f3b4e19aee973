// One thread ends every relayed stream whose caller went away: each within
// an interval, once, never after its ticket went, and no thread per stream.

#include "services/grpc/stream_watch.hpp"

#include <atomic>
#include <filesystem>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

namespace healthtwin::services {
namespace {

using namespace std::chrono_literals;

size_t threads_of_this_process() {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/task"))
    ++n;
  return n;
}

// Waits up to `limit` for `done`.
template <class Pred>
bool within(std::chrono::milliseconds limit, Pred done) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

TEST(stream_watch, a_stream_whose_caller_went_away_is_ended_once_within_an_interval) {
  stream_watch w{20ms};
  std::atomic<bool> gone{false};
  std::atomic<int> ended{0};
  auto t = w.watch([&] { return gone.load(); }, [&] { ++ended; });
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(ended, 0);  // the caller is still there
  gone = true;
  ASSERT_TRUE(within(500ms, [&] { return ended.load() == 1; }));
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(ended, 1);  // once
}

TEST(stream_watch, a_stream_no_longer_watched_is_never_ended) {
  stream_watch w{10ms};
  std::atomic<bool> gone{false};
  std::atomic<int> ended{0};
  {
    auto t = w.watch([&] { return gone.load(); }, [&] { ++ended; });
    EXPECT_EQ(w.watched(), 1u);
  }
  EXPECT_EQ(w.watched(), 0u);
  gone = true;
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(ended, 0);
}

TEST(stream_watch, many_streams_share_one_thread_and_each_ends_on_its_own) {
  auto before = threads_of_this_process();
  stream_watch w{10ms};
  constexpr int n = 200;
  std::vector<std::unique_ptr<std::atomic<bool>>> gone;
  std::vector<std::unique_ptr<std::atomic<int>>> ended;
  std::vector<stream_watch::ticket> tickets;
  for (int i = 0; i < n; ++i) {
    gone.push_back(std::make_unique<std::atomic<bool>>(false));
    ended.push_back(std::make_unique<std::atomic<int>>(0));
    tickets.push_back(w.watch([g = gone.back().get()] { return g->load(); },
                              [e = ended.back().get()] { ++*e; }));
  }
  EXPECT_LE(threads_of_this_process(), before + 1) << "a thread per watched stream";
  for (int i = 0; i < n; i += 2)
    *gone[i] = true;
  ASSERT_TRUE(within(1000ms, [&] {
    for (int i = 0; i < n; i += 2)
      if (*ended[i] != 1)
        return false;
    return true;
  }));
  for (int i = 1; i < n; i += 2)
    EXPECT_EQ(*ended[i], 0) << "stream " << i << " ended while its caller is there";
}

}  // namespace
}  // namespace healthtwin::services
