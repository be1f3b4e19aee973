#include "actors/models/alert_condition.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

namespace {
constexpr condition_timing timing{{0, 30'000, 15'000, 5'000}, 30'000};
}

TEST(alert_condition, raises_only_after_the_onset_delay) {
  alert_condition c;
  EXPECT_FALSE(c.evaluate(priority::medium, 0, timing));
  EXPECT_FALSE(c.evaluate(priority::medium, 14'999, timing));
  auto ch = c.evaluate(priority::medium, 15'000, timing);
  ASSERT_TRUE(ch);
  EXPECT_EQ(ch->level, priority::medium);
  EXPECT_EQ(ch->previous, priority::none);
  EXPECT_FALSE(c.evaluate(priority::medium, 20'000, timing));  // de-duplicated
}

TEST(alert_condition, a_short_excursion_never_alarms) {
  alert_condition c;
  c.evaluate(priority::medium, 0, timing);
  c.evaluate(priority::medium, 10'000, timing);
  EXPECT_FALSE(c.evaluate(priority::none, 11'000, timing));  // back to normal: delay restarts
  EXPECT_FALSE(c.evaluate(priority::medium, 12'000, timing));
  EXPECT_FALSE(c.evaluate(priority::medium, 26'000, timing));
  EXPECT_TRUE(c.evaluate(priority::medium, 27'000, timing));
}

TEST(alert_condition, high_evidence_counts_for_lower_priorities) {
  alert_condition c;
  c.evaluate(priority::high, 0, timing);
  auto ch = c.evaluate(priority::high, 5'000, timing);
  ASSERT_TRUE(ch);
  EXPECT_EQ(ch->level, priority::high);
  // Rising through medium to high: medium after 15 s, high 5 s after high began.
  alert_condition d;
  d.evaluate(priority::medium, 0, timing);
  EXPECT_FALSE(d.evaluate(priority::high, 10'000, timing));
  auto up = d.evaluate(priority::high, 15'000, timing);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->level, priority::high);  // high has held 5 s by now
  EXPECT_EQ(up->previous, priority::none);
}

TEST(alert_condition, clears_and_deescalates_only_after_the_hold_time) {
  alert_condition c;
  c.evaluate(priority::high, 0, timing);
  c.evaluate(priority::high, 5'000, timing);
  EXPECT_FALSE(c.evaluate(priority::medium, 6'000, timing));
  EXPECT_FALSE(c.evaluate(priority::medium, 35'999, timing));
  auto down = c.evaluate(priority::medium, 36'000, timing);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->level, priority::medium);
  EXPECT_FALSE(c.evaluate(priority::none, 40'000, timing));
  EXPECT_FALSE(c.evaluate(priority::medium, 50'000, timing));  // eased, then back: hold restarts
  EXPECT_FALSE(c.evaluate(priority::none, 60'000, timing));
  auto clear = c.evaluate(priority::none, 90'000, timing);
  ASSERT_TRUE(clear);
  EXPECT_EQ(clear->level, priority::none);
}

TEST(alert_condition, state_round_trips_and_reset_forces_a_level) {
  alert_condition c;
  c.evaluate(priority::medium, 0, timing);
  alert_condition d;
  d.restore(c.save());
  EXPECT_TRUE(d.evaluate(priority::medium, 15'000, timing));
  d.reset(priority::none);
  EXPECT_EQ(d.level(), priority::none);
}

TEST(alert_condition, a_reset_by_hand_restarts_the_onset_delay_of_a_condition_still_present) {
  alert_condition c;
  c.evaluate(priority::high, 0, timing);
  ASSERT_TRUE(c.evaluate(priority::high, 5'000, timing));  // HIGH after 5 s
  c.reset(priority::none);  // a clinician resolved it by hand
  EXPECT_FALSE(c.evaluate(priority::high, 6'000, timing));  // not at once...
  EXPECT_FALSE(c.evaluate(priority::high, 10'000, timing));
  auto again = c.evaluate(priority::high, 11'000, timing);  // ...but 5 s later
  ASSERT_TRUE(again);
  EXPECT_EQ(again->level, priority::high);
  EXPECT_EQ(again->previous, priority::none);
}
