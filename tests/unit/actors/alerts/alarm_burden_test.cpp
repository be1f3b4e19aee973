#include "actors/alerts/alarm_burden.hpp"

#include <gtest/gtest.h>

using namespace healthtwin;
using namespace healthtwin::actors;
using models::alert_kind;
using models::priority;

namespace {

constexpr int64_t minute = 60'000;
constexpr int64_t day = 24 * 60 * minute;

alert_event event(alert_event_type type, const std::string& patient, int id, const std::string& ward,
                  int64_t at, alert_kind kind = alert_kind::threshold, priority level = priority::high,
                  const std::string& device = "") {
  alert_event e;
  e.type = type;
  e.event_time_ms = at;
  e.alert.name = "tenants/h/patients/" + patient + "/alerts/" + std::to_string(id);
  e.alert.patient = "tenants/h/patients/" + patient;
  e.alert.ward = ward;
  e.alert.kind = kind;
  e.alert.level = level;
  e.alert.device = device;
  return e;
}

alert_filter tenant_scope() {
  alert_filter f;
  f.tenant = "h";
  return f;
}

}  // namespace

TEST(alarm_burden, counts_alerts_raised_in_the_window_per_ward_kind_and_priority_per_patient_day) {
  alarm_burden_builder b{tenant_scope(), day, 2 * day};
  b.add(event(alert_event_type::raised, "p1", 1, "icu", day - 1));  // before the window
  b.add(event(alert_event_type::raised, "p1", 2, "icu", day));
  b.add(event(alert_event_type::raised, "p1", 3, "icu", day + minute, alert_kind::news2, priority::medium));
  b.add(event(alert_event_type::raised, "p2", 1, "ward-b", day + 2 * minute, alert_kind::device_offline,
              priority::low, "tenants/h/devices/oxi"));
  b.add(event(alert_event_type::raised, "p2", 2, "ward-b", 2 * day));  // at the end: outside
  auto other = event(alert_event_type::raised, "p9", 1, "icu", day + minute);
  other.alert.name = "tenants/other/patients/p9/alerts/1";
  other.alert.patient = "tenants/other/patients/p9";
  b.add(other);  // another tenant
  auto r = std::move(b).finish({{"icu", 4}, {"ward-b", 2}}, 10);
  EXPECT_EQ(r.total.raised, 3u);
  EXPECT_EQ(r.total.patients, 6u);
  ASSERT_EQ(r.wards.size(), 2u);
  EXPECT_EQ(r.wards[0].ward, "icu");
  EXPECT_EQ(r.wards[0].raised, 2u);
  EXPECT_EQ(r.wards[0].patients, 4u);
  EXPECT_EQ((r.wards[0].by_kind_priority.at({alert_kind::threshold, priority::high})), 1u);
  EXPECT_EQ((r.wards[0].by_kind_priority.at({alert_kind::news2, priority::medium})), 1u);
  EXPECT_EQ(r.wards[1].ward, "ward-b");
  EXPECT_EQ((r.wards[1].by_kind_priority.at({alert_kind::device_offline, priority::low})), 1u);
  ASSERT_EQ(r.noisiest_patients.size(), 2u);
  EXPECT_EQ(r.noisiest_patients[0].name, "tenants/h/patients/p1");
  EXPECT_EQ(r.noisiest_patients[0].raised, 2u);
  ASSERT_EQ(r.noisiest_devices.size(), 1u);
  EXPECT_EQ(r.noisiest_devices[0].name, "tenants/h/devices/oxi");
}

TEST(alarm_burden, times_to_acknowledge_and_resolutions_without_one_follow_each_alert_raised_in_the_window) {
  alarm_burden_builder b{tenant_scope(), 0, day};
  for (int i = 1; i <= 10; ++i)
    b.add(event(alert_event_type::raised, "p1", i, "icu", i * minute));
  // Acknowledged after 1..9 s x 10 for alerts 1..9; 10 is resolved by itself.
  for (int i = 1; i <= 9; ++i) {
    b.add(event(alert_event_type::acknowledged, "p1", i, "icu", i * minute + i * 10'000));
    b.add(event(alert_event_type::acknowledged, "p1", i, "icu", i * minute + 999'000));  // only the first counts
  }
  b.add(event(alert_event_type::escalated, "p1", 10, "icu", 10 * minute + 300'000));
  b.add(event(alert_event_type::escalated, "p1", 10, "icu", 10 * minute + 600'000));
  b.add(event(alert_event_type::resolved, "p1", 10, "icu", 10 * minute + 700'000));
  b.add(event(alert_event_type::resolved, "p1", 1, "icu", day + day));  // after the window: still counted
  b.add(event(alert_event_type::acknowledged, "p1", 77, "icu", 5 * minute));  // never raised here
  auto r = std::move(b).finish({{"icu", 2}}, 10);
  auto& g = r.total;
  EXPECT_EQ(g.raised, 10u);
  EXPECT_EQ(g.acknowledged(), 9u);
  EXPECT_EQ(g.ack_quantile(0.5), 50'000);  // nearest rank: the 5th of 10..90 s
  EXPECT_EQ(g.ack_quantile(0.9), 90'000);
  EXPECT_EQ(g.resolved, 2u);
  EXPECT_EQ(g.resolved_unacknowledged, 1u);
  EXPECT_EQ(g.escalated, 1u);
  // 10 s in the first bucket (edges are inclusive), 20 and 30 s in the
  // second, 40..60 s in the third, 70..90 s in the fourth.
  EXPECT_EQ(g.ack_buckets[0], 1u);
  EXPECT_EQ(g.ack_buckets[1], 2u);
  EXPECT_EQ(g.ack_buckets[2], 3u);
  EXPECT_EQ(g.ack_buckets[3], 3u);
  EXPECT_EQ(r.wards[0].acknowledged(), 9u);
}

TEST(alarm_burden, a_ward_or_patient_scope_and_a_minimum_priority_narrow_what_is_counted) {
  auto scope = tenant_scope();
  scope.ward = "icu";
  scope.min_priority = priority::medium;
  alarm_burden_builder b{scope, 0, day};
  b.add(event(alert_event_type::raised, "p1", 1, "icu", minute, alert_kind::threshold, priority::high));
  b.add(event(alert_event_type::raised, "p1", 2, "icu", minute, alert_kind::threshold, priority::low));
  b.add(event(alert_event_type::raised, "p2", 1, "ward-b", minute));
  auto r = std::move(b).finish({{"icu", 3}, {"ward-b", 5}}, 1);
  EXPECT_EQ(r.total.raised, 1u);
  EXPECT_EQ(r.total.patients, 3u);  // the ward's census only
  ASSERT_EQ(r.wards.size(), 1u);
  EXPECT_FALSE(r.total.ack_quantile(0.5));
}
