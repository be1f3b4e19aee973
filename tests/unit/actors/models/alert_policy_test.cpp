#include "actors/models/alert_policy.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

TEST(alert_policy, default_limits_band_values_by_priority) {
  auto spo2 = *default_limits(metric::spo2);
  EXPECT_EQ(spo2.level_of(97), priority::none);
  EXPECT_EQ(spo2.level_of(90), priority::medium);
  EXPECT_EQ(spo2.level_of(85), priority::high);
  auto hr = *default_limits(metric::heart_rate);
  EXPECT_EQ(hr.level_of(40), priority::high);
  EXPECT_EQ(hr.level_of(50), priority::medium);
  EXPECT_EQ(hr.level_of(129), priority::none);
  EXPECT_EQ(hr.level_of(130), priority::medium);
  EXPECT_EQ(hr.level_of(150), priority::high);
  EXPECT_EQ(hr.level_of(146, hr.hysteresis), priority::high);  // within the band
  EXPECT_FALSE(default_limits(metric::battery));
}

TEST(alert_policy, every_default_is_consistent_and_inconsistent_limits_are_caught) {
  for (uint8_t n = 1; n <= metric_count; ++n) {
    if (auto l = default_limits(static_cast<metric>(n))) {
      EXPECT_TRUE(l->consistent()) << n;
    }
  }
  threshold_limits crossed{std::nullopt, 90, 85, std::nullopt, 1};
  EXPECT_FALSE(crossed.consistent());
  threshold_limits negative{std::nullopt, 90, std::nullopt, std::nullopt, -1};
  EXPECT_FALSE(negative.consistent());
}

TEST(alert_policy, news2_bands_map_to_priorities) {
  EXPECT_EQ(news2_priority(news2_band::high), priority::high);
  EXPECT_EQ(news2_priority(news2_band::medium), priority::medium);
  EXPECT_EQ(news2_priority(news2_band::low_medium), priority::low);
  EXPECT_EQ(news2_priority(news2_band::low), priority::none);
}

TEST(alert_policy, clinical_and_technical_kinds_are_told_apart) {
  EXPECT_TRUE(is_clinical(alert_kind::trend_forecast));
  EXPECT_TRUE(is_clinical(alert_kind::baseline_anomaly));
  EXPECT_FALSE(is_clinical(alert_kind::device_offline));
  EXPECT_FALSE(is_clinical(alert_kind::signal_quality));
  EXPECT_EQ(to_string(alert_kind::battery_low), "battery_low");
}
