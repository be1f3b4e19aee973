#include "actors/models/device_health.hpp"
#include "actors/models/state_codec.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

TEST(device_health, reports_a_device_offline_on_the_clock_and_back_on_data) {
  device_health h;
  patient_settings s;  // offline after 60 s
  std::vector<finding> out;
  h.set_devices({"mon", "chart"}, 0);
  h.on_data("mon", 1000, 0, out);
  h.tick(50'000, 0, s, out);
  EXPECT_TRUE(out.empty());
  h.tick(61'001, 0, s, out);
  ASSERT_EQ(out.size(), 2u);  // mon silent since 1 s, chart never sent since 0
  EXPECT_EQ(out[0].kind, alert_kind::device_offline);
  EXPECT_EQ(out[0].level, priority::medium);
  out.clear();
  h.on_data("mon", 70'000, 0, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].device, "mon");
  EXPECT_EQ(out[0].what, finding::change::cleared);
}

TEST(device_health, no_offline_alarm_within_a_restart_grace) {
  device_health h;
  patient_settings s;
  std::vector<finding> out;
  h.set_devices({"mon"}, 0);
  h.on_data("mon", 1000, 0, out);
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
  h.on_data("a", 500, 0, out);
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

TEST(device_health, a_clock_off_by_more_than_two_minutes_raises_a_low_alarm_and_backfills_do_not) {
  device_health h;
  std::vector<finding> out;
  h.set_devices({"mon", "late"}, 0);
  auto min = 60'000;
  // "late" delivers minute numerics promptly, then, after a network gap,
  // uploads what it stored: 30 old frames within seconds. No drift.
  for (int i = 1; i <= 6; ++i)
    h.on_data("late", i * min + 2'000, i * min, out);
  for (int i = 0; i < 30; ++i)
    h.on_data("late", 40 * min + i * 100, 7 * min + i * min, out);
  EXPECT_TRUE(out.empty());
  // A backfill alone (a device that was away for an hour) is no drift either.
  device_health away;
  away.set_devices({"mon"}, 0);
  for (int i = 0; i < 60; ++i)
    away.on_data("mon", 100 * min + i * 20'000, 30 * min + i * min, out);
  EXPECT_TRUE(out.empty());
  // "mon"'s clock is 3 min behind: its readings always look 3 min old.
  auto at = [&](int i) { return 1'000 * min + i * min; };  // node time of minute i
  for (int i = 1; i <= 3; ++i)
    h.on_data("mon", at(i), at(i) - 180'000, out);
  EXPECT_TRUE(out.empty());  // not before 4 samples over 45 s
  h.on_data("mon", at(4), at(4) - 180'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, alert_kind::clock_drift);
  EXPECT_EQ(out[0].level, priority::low);
  EXPECT_EQ(out[0].device, "mon");
  EXPECT_DOUBLE_EQ(out[0].value, 180);
  out.clear();
  // Still 70 s off after a partial fix: above half the limit, it stays.
  for (int i = 5; i <= 12; ++i)
    h.on_data("mon", at(i), at(i) - 70'000, out);
  EXPECT_TRUE(out.empty());
  // Set right: it clears.
  for (int i = 13; i <= 20; ++i)
    h.on_data("mon", at(i), at(i) - 1'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].level, priority::none);
  // A clock ahead of the node's shows as a negative drift; at 1 s data it
  // is sampled every 15 s.
  out.clear();
  device_health ahead;
  ahead.set_devices({"mon"}, 0);
  for (int s = 1; s <= 60; ++s)
    ahead.on_data("mon", s * 1'000, s * 1'000 + 150'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_DOUBLE_EQ(out[0].value, -150);
  // The state survives a snapshot...
  device_health r;
  ASSERT_TRUE(r.decode(ahead.encode()));
  EXPECT_EQ(r.encode(), ahead.encode());
  EXPECT_EQ(r.devices()[0].clock_condition.level(), priority::low);
  // ...and a snapshot of version 1 (before clock drift) still loads.
  healthtwin::models::state_writer w;
  w.put(uint8_t{1});
  w.put(uint32_t{1});
  w.put_string("mon");
  w.put(int64_t{5'000});
  w.put(double{80});
  for (int c = 0; c < 2; ++c) {
    w.put(uint8_t{0});
    for (int k = 0; k < 4; ++k)
      w.put(int64_t{-1});
    w.put(int64_t{-1});
  }
  device_health old;
  ASSERT_TRUE(old.decode(w.take()));
  EXPECT_EQ(old.devices()[0].battery, 80);
  EXPECT_EQ(old.devices()[0].clock_samples_known, 0);
}
