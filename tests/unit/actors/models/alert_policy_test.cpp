#include "actors/models/alert_policy.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;
using change = finding::change;

TEST(alert_policy, raises_once_while_the_value_stays_beyond_the_limit) {
  alert_policy p;
  EXPECT_FALSE(p.on_vital(metric::spo2, 97));
  auto f = p.on_vital(metric::spo2, 89);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, change::raised);
  EXPECT_EQ(f->level, priority::medium);
  EXPECT_EQ(f->kind, alert_kind::threshold);
  EXPECT_EQ(f->subject, metric::spo2);
  EXPECT_FALSE(p.on_vital(metric::spo2, 88));  // de-duplicated
  EXPECT_FALSE(p.on_vital(metric::spo2, 90));
}

TEST(alert_policy, escalates_to_high_priority) {
  alert_policy p;
  p.on_vital(metric::spo2, 89);
  auto f = p.on_vital(metric::spo2, 84);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, change::escalated);
  EXPECT_EQ(f->level, priority::high);
  EXPECT_EQ(f->previous, priority::medium);
}

TEST(alert_policy, clears_only_past_the_hysteresis_band) {
  alert_policy p;
  p.on_vital(metric::spo2, 89);                // medium at <= 90
  EXPECT_FALSE(p.on_vital(metric::spo2, 91));  // within 2 of the limit
  EXPECT_FALSE(p.on_vital(metric::spo2, 92));
  auto f = p.on_vital(metric::spo2, 93);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, change::cleared);
  EXPECT_EQ(f->level, priority::none);
  EXPECT_EQ(p.threshold_level(metric::spo2), priority::none);
}

TEST(alert_policy, deescalates_with_hysteresis) {
  alert_policy p;
  p.on_vital(metric::heart_rate, 155);  // high at >= 150
  EXPECT_FALSE(p.on_vital(metric::heart_rate, 146));
  auto f = p.on_vital(metric::heart_rate, 144);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, change::deescalated);
  EXPECT_EQ(f->level, priority::medium);
}

TEST(alert_policy, metrics_without_limits_never_alarm) {
  alert_policy p;
  EXPECT_FALSE(p.on_vital(metric::battery, 1));
  EXPECT_FALSE(p.on_vital(metric::infusion_rate, 1999));
}

TEST(alert_policy, news2_bands_map_to_priorities) {
  EXPECT_EQ(alert_policy::priority_of(news2_band::high), priority::high);
  EXPECT_EQ(alert_policy::priority_of(news2_band::medium), priority::medium);
  EXPECT_EQ(alert_policy::priority_of(news2_band::low_medium), priority::low);
  EXPECT_EQ(alert_policy::priority_of(news2_band::low), priority::none);
}

namespace {

news2_result news2_total(uint8_t total, bool single_three = false) {
  news2_result r;
  r.total = total;
  r.band = band_of(total, single_three);
  if (single_three)
    r.parts[0].score = 3;
  return r;
}

}  // namespace

TEST(alert_policy, news2_alert_has_one_point_of_hysteresis) {
  alert_policy p;
  EXPECT_FALSE(p.on_news2(news2_total(4)));
  auto f = p.on_news2(news2_total(7));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, alert_kind::news2);
  EXPECT_EQ(f->level, priority::high);
  EXPECT_EQ(f->value, 7);
  EXPECT_FALSE(p.on_news2(news2_total(6)));  // stays high
  f = p.on_news2(news2_total(5));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->level, priority::medium);
  EXPECT_FALSE(p.on_news2(news2_total(4)));  // stays medium
  f = p.on_news2(news2_total(3));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->what, change::cleared);
}

TEST(alert_policy, single_red_parameter_raises_low_priority_news2_alert) {
  alert_policy p;
  auto f = p.on_news2(news2_total(3, true));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->level, priority::low);
}

TEST(alert_policy, restores_levels_from_a_snapshot) {
  alert_policy p;
  p.restore(alert_kind::threshold, metric::spo2, priority::high);
  p.restore(alert_kind::news2, metric{}, priority::medium);
  EXPECT_FALSE(p.on_vital(metric::spo2, 80));
  EXPECT_EQ(p.news2_level(), priority::medium);
}
