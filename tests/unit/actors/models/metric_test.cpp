#include "actors/models/metric.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

TEST(metric, maps_wire_numbers_and_refuses_unknown_ones) {
  EXPECT_EQ(metric_from_number(1), metric::heart_rate);
  EXPECT_EQ(metric_from_number(12), metric::oxygen_flow);
  EXPECT_EQ(metric_from_number(13), metric::mean_arterial_pressure);
  EXPECT_FALSE(metric_from_number(0));
  EXPECT_FALSE(metric_from_number(14));
  EXPECT_FALSE(device_type_from_number(0));
  EXPECT_EQ(device_type_from_number(9), device_type::observation_chart);
}

TEST(metric, every_metric_has_name_unit_and_range) {
  for (uint32_t n = 1; n <= metric_count; ++n) {
    auto m = *metric_from_number(n);
    EXPECT_NE(to_string(m), "unknown");
    EXPECT_FALSE(unit_of(m).empty());
    EXPECT_LT(range_of(m).min, range_of(m).max);
  }
}

TEST(metric, device_types_measure_only_their_metrics) {
  EXPECT_TRUE(device_measures(device_type::pulse_oximeter, metric::spo2));
  EXPECT_FALSE(device_measures(device_type::pulse_oximeter, metric::glucose));
  EXPECT_TRUE(device_measures(device_type::asset_tag, metric::battery));
  EXPECT_FALSE(device_measures(device_type::asset_tag, metric::heart_rate));
  EXPECT_TRUE(device_measures(device_type::observation_chart, metric::consciousness));
  EXPECT_FALSE(device_measures(device_type::bedside_monitor, metric::consciousness));
  for (auto t : {device_type::bedside_monitor, device_type::bp_cuff, device_type::observation_chart})
    EXPECT_TRUE(device_measures(t, metric::mean_arterial_pressure));
  EXPECT_FALSE(device_measures(device_type::pulse_oximeter, metric::mean_arterial_pressure));
  EXPECT_EQ(unit_of(metric::mean_arterial_pressure), "mm[Hg]");
}
