#include "services/grpc/rate_limiter.hpp"

#include <gtest/gtest.h>

using healthtwin::services::rate_limiter;
using namespace std::chrono_literals;

TEST(rate_limiter, a_burst_passes_then_the_rate_holds_and_says_how_long_to_wait) {
  rate_limiter limit{100, 200};  // 100/s, bursts of 200
  auto t0 = rate_limiter::clock::time_point{} + 1h;
  EXPECT_EQ(limit.take("pump-1", 150, t0), 0ms);
  EXPECT_EQ(limit.take("pump-1", 50, t0), 0ms);
  EXPECT_EQ(limit.take("pump-1", 10, t0), 100ms);  // empty: 10 units take 0.1 s
  EXPECT_EQ(limit.take("pump-1", 10, t0 + 100ms), 0ms);
  // Other keys have their own bucket.
  EXPECT_EQ(limit.take("pump-2", 200, t0), 0ms);
  // A refused request spends nothing.
  EXPECT_EQ(limit.take("pump-3", 200, t0), 0ms);
  EXPECT_GT(limit.take("pump-3", 50, t0), 0ms);
  EXPECT_EQ(limit.take("pump-3", 50, t0 + 500ms), 0ms);
}

TEST(rate_limiter, requests_larger_than_the_burst_pass_once_the_bucket_is_full) {
  rate_limiter limit{10, 20};
  auto t0 = rate_limiter::clock::time_point{} + 1h;
  EXPECT_EQ(limit.take("svc", 1000, t0), 0ms);
  EXPECT_EQ(limit.take("svc", 1000, t0 + 1s), 1000ms);
  EXPECT_EQ(limit.take("svc", 1000, t0 + 2s), 0ms);
}

TEST(rate_limiter, memory_stays_bounded_by_forgetting_idle_callers_only) {
  rate_limiter limit{1, 1, 16};  // one bucket per shard
  auto t0 = rate_limiter::clock::time_point{} + 1h;
  for (int i = 0; i < 10'000; ++i)
    limit.take("caller-" + std::to_string(i), 1, t0 + std::chrono::seconds(2 * i));
  EXPECT_LE(limit.keys(), 16u);
  // A caller that just spent its bucket is still limited.
  auto now = t0 + std::chrono::seconds(20'000);
  EXPECT_EQ(limit.take("busy", 1, now), 0ms);
  EXPECT_GT(limit.take("busy", 1, now), 0ms);
}
