// The checkpointer's clock decisions with an injected clock: no sleeping.
#include <gtest/gtest.h>

#include "actors/ingest/checkpoint_schedule.hpp"

using namespace healthtwin::actors;
using namespace std::chrono_literals;

namespace {

struct fake_clock {
  checkpoint_schedule::clock::time_point t{std::chrono::hours(1)};
  checkpoint_schedule::now_fn fn() {
    return [this] { return t; };
  }
};

}  // namespace

TEST(checkpoint_schedule, due_after_the_interval_or_enough_readings_or_when_asked) {
  fake_clock c;
  checkpoint_schedule s{30s, 1'000, 2s, 64, c.fn()};
  EXPECT_TRUE(s.due(0));  // the first one is due at once
  s.scheduled();
  EXPECT_FALSE(s.due(0));
  c.t += 29s;
  EXPECT_FALSE(s.due(999));
  EXPECT_TRUE(s.due(1'000));  // enough readings since the last one
  c.t += 1s;
  EXPECT_TRUE(s.due(0));  // the interval passed
  s.scheduled();
  EXPECT_FALSE(s.due(0));
  s.request_now();  // an erasure waits for a checkpoint
  EXPECT_TRUE(s.due(0));
}

TEST(checkpoint_schedule, shards_are_asked_evenly_over_the_spread) {
  fake_clock c;
  checkpoint_schedule s{30s, 1'000, 2s, 64, c.fn()};
  s.started();
  EXPECT_EQ(s.shards_due(), 1u);  // at least one at once
  c.t += 500ms;
  EXPECT_EQ(s.shards_due(), 16u);
  c.t += 500ms;
  EXPECT_EQ(s.shards_due(), 32u);
  EXPECT_EQ(s.shards_due(true), 64u);  // a stop asks all
  c.t += 1s;
  EXPECT_EQ(s.shards_due(), 64u);
  EXPECT_EQ(s.started_at() + 2s, c.t);
}

TEST(checkpoint_schedule, the_spread_is_at_most_a_quarter_of_the_interval) {
  fake_clock c;
  checkpoint_schedule s{400ms, 1'000, 2s, 10, c.fn()};  // spread 100 ms
  s.started();
  c.t += 50ms;
  EXPECT_EQ(s.shards_due(), 5u);
  c.t += 50ms;
  EXPECT_EQ(s.shards_due(), 10u);
  checkpoint_schedule none{30s, 1'000, 0ms, 10, c.fn()};
  none.started();
  EXPECT_EQ(none.shards_due(), 10u);  // no spread: all at once
}
