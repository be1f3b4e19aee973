#include "actors/models/device_health.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

TEST(device_health, reports_a_device_offline_on_the_clock_and_back_on_data) {
  device_health h;
  patient_settings s;  // offline after 60 s
  std::vector<finding> out;
  h.set_devices({"mon", "chart"}, 0);
  h.on_data("mon", 1000, out);
  h.tick(50'000, 0, s, out);
  EXPECT_TRUE(out.empty());
  h.tick(61'001, 0, s, out);
  ASSERT_EQ(out.size(), 2u);  // mon silent since 1 s, chart never sent since 0
  EXPECT_EQ(out[0].kind, alert_kind::device_offline);
  EXPECT_EQ(out[0].level, priority::medium);
  out.clear();
  h.on_data("mon", 70'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].device, "mon");
  EXPECT_EQ(out[0].what, finding::change::cleared);
}

TEST(device_health, no_offline_alarm_within_a_restart_grace) {
  device_health h;
  patient_settings s;
  std::vector<finding> out;
  h.set_devices({"mon"}, 0);
  h.on_data("mon", 1000, out);
  h.tick(500'000, 480'000, s, out);  // restarted at 480 s: grace until 540 s
  EXPECT_TRUE(out.empty());
  h.tick(541'000, 480'000, s, out);
  EXPECT_EQ(out.size(), 1u);
}

TEST(device_health, battery_low_and_critical_with_hysteresis) {
  device_health h;
  patient_settings s;  // low at 20 %
  std::vector<finding> out;
  h.set_devices({"mon"}, 0);
  h.on_battery("mon", 50, 0, s, out);
  h.on_battery("mon", 19, 1, s, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, alert_kind::battery_low);
  EXPECT_EQ(out[0].level, priority::low);
  h.on_battery("mon", 4, 2, s, out);
  EXPECT_EQ(out.back().level, priority::medium);
  out.clear();
  h.on_battery("mon", 22, 3, s, out);  // charging, within 5 % of 20: stays low
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].level, priority::low);
  h.on_battery("mon", 26, 4, s, out);
  EXPECT_EQ(out.back().what, finding::change::cleared);
}

TEST(device_health, detached_devices_are_forgotten_and_state_round_trips) {
  device_health h;
  std::vector<finding> out;
  h.set_devices({"a", "b"}, 0);
  h.on_data("a", 500, out);
  h.set_devices({"a"}, 1000);
  ASSERT_EQ(h.devices().size(), 1u);
  EXPECT_EQ(h.devices()[0].last_receive_ms, 500);
  device_health r;
  ASSERT_TRUE(r.decode(h.encode()));
  EXPECT_EQ(r.encode(), h.encode());
  EXPECT_FALSE(r.decode("\x01\xff\xff\xff\xff"));
}

TEST(device_health, a_reset_offline_condition_is_raised_again_while_the_device_stays_silent) {
  device_health h;
  patient_settings s;
  std::vector<finding> out;
  h.set_devices({"mon"}, 0);
  h.tick(61'000, 0, s, out);
  ASSERT_EQ(out.size(), 1u);
  out.clear();
  h.reset(alert_kind::device_offline, "mon");
  EXPECT_EQ(h.devices()[0].offline.level(), priority::none);
  h.tick(71'000, 0, s, out);  // still silent: a new alarm
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].what, finding::change::raised);
}
