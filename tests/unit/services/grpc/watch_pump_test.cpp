// The watch pump runs every change due before time-driven refreshes, which
// it takes in slices: a burst of thousands of heartbeats running out (or an
// end of deadline) cannot hold a change back behind all of it.

#include "services/grpc/watch_pump.hpp"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace healthtwin::services;

namespace {

// Records the order it was refreshed in; takes `cost` each time.
struct recorder final : pumped {
  recorder(std::atomic<int>& order, std::chrono::microseconds cost) : order_(order), cost_(cost) {}
  void refresh() override {
    std::this_thread::sleep_for(cost_);
    std::lock_guard<std::mutex> guard{mtx};
    position = order_.fetch_add(1);
    done.notify_all();
  }
  bool wait(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock{mtx};
    return done.wait_for(lock, limit, [&] { return position >= 0; });
  }
  std::mutex mtx;
  std::condition_variable done;
  int position = -1;

private:
  std::atomic<int>& order_;
  std::chrono::microseconds cost_;
};

}  // namespace

TEST(watch_pump, a_change_overtakes_a_burst_of_time_driven_refreshes) {
  watch_pump pump;
  std::atomic<int> order{0};
  constexpr int burst = 20 * static_cast<int>(watch_pump::time_slice);
  std::vector<std::shared_ptr<recorder>> timed;
  auto now = watch_pump::clock::now();
  for (int i = 0; i < burst; ++i) {
    timed.push_back(std::make_shared<recorder>(order, std::chrono::microseconds(200)));
    pump.at(now, timed.back(), watch_pump::urgency::time);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the burst is under way
  auto change = std::make_shared<recorder>(order, std::chrono::microseconds(0));
  pump.at(watch_pump::clock::now(), change);
  ASSERT_TRUE(change->wait(std::chrono::seconds(10)));
  // Behind at most the slices run before it was due, not the whole burst.
  EXPECT_LT(change->position, burst / 2) << "the change waited behind the burst";
  for (auto& t : timed)
    ASSERT_TRUE(t->wait(std::chrono::seconds(10)));  // the burst still runs, whole
  EXPECT_EQ(order.load(), burst + 1);
  EXPECT_EQ(pump.queued(), 0u);
}

TEST(watch_pump, refreshes_due_later_wait_and_gone_targets_are_skipped) {
  watch_pump pump;
  std::atomic<int> order{0};
  auto later = std::make_shared<recorder>(order, std::chrono::microseconds(0));
  auto soon = std::make_shared<recorder>(order, std::chrono::microseconds(0));
  auto now = watch_pump::clock::now();
  pump.at(now + std::chrono::milliseconds(300), later, watch_pump::urgency::time);
  pump.at(now + std::chrono::milliseconds(100), soon);
  {
    auto gone = std::make_shared<recorder>(order, std::chrono::microseconds(0));
    pump.at(now, gone);
  }  // dropped before it is due: nothing to refresh
  ASSERT_TRUE(later->wait(std::chrono::seconds(10)));
  EXPECT_GE(watch_pump::clock::now() - now, std::chrono::milliseconds(300));
  EXPECT_EQ(soon->position, 0);
  EXPECT_EQ(later->position, 1);
}

TEST(watch_pump, each_run_of_refreshes_is_a_new_batch) {
  watch_pump pump;
  struct batch_seen final : pumped {
    explicit batch_seen(const watch_pump& p) : pump(p) {}
    void refresh() override {
      std::lock_guard<std::mutex> guard{mtx};
      batches.push_back(pump.batch());
      cv.notify_all();
    }
    const watch_pump& pump;
    std::mutex mtx;
    std::condition_variable cv;
    std::vector<uint64_t> batches;
  };
  auto a = std::make_shared<batch_seen>(pump), b = std::make_shared<batch_seen>(pump);
  auto now = watch_pump::clock::now();
  pump.at(now, a);
  pump.at(now, b);
  pump.at(now + std::chrono::milliseconds(50), a);
  std::unique_lock<std::mutex> lock{a->mtx};
  ASSERT_TRUE(a->cv.wait_for(lock, std::chrono::seconds(10), [&] { return a->batches.size() == 2; }));
  EXPECT_LT(a->batches[0], a->batches[1]);  // 50 ms apart: two batches
}
