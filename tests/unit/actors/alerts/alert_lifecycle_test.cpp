// The alert lifecycle's rules on plain records, with the time given: no
// hub, no store, no clock.
#include <gtest/gtest.h>

#include "actors/alerts/alert_lifecycle.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;

namespace {

const std::string p1 = "tenants/h1/patients/p1";
constexpr int64_t minute = 60'000;

alert_record alert(models::priority level, models::metric subject = models::metric::spo2) {
  alert_record a;
  a.name = p1 + "/alerts/a1";
  a.patient = p1;
  a.subject = subject;
  a.level = level;
  return a;
}

alert_silence silence(int64_t until, models::metric subject = models::metric{}) {
  return alert_silence{p1, subject, until, "nurse-1", "procedure"};
}

const alert_lifecycle rules{{2 * minute, models::priority::high}};

}  // namespace

TEST(alert_lifecycle, a_raised_alert_is_active_notified_now_and_silenced_if_covered) {
  auto a = alert(models::priority::high);
  a.state = alert_state::resolved;  // whatever it was: raising starts afresh
  rules.raise(a, 1'000, {});
  EXPECT_EQ(a.state, alert_state::active);
  EXPECT_EQ(a.notify_time_ms, 1'000);
  EXPECT_EQ(a.silenced_until_ms, 0);
  auto b = alert(models::priority::high);
  rules.raise(b, 1'000, {silence(5'000, models::metric::heart_rate), silence(9'000), silence(500)});
  EXPECT_EQ(b.silenced_until_ms, 9'000) << "the latest covering silence; other metrics and ended ones do not count";
}

TEST(alert_lifecycle, unacknowledged_high_alerts_escalate_each_escalation_time) {
  auto a = alert(models::priority::high);
  rules.raise(a, 0, {});
  EXPECT_FALSE(rules.escalate(a, 2 * minute - 1));
  ASSERT_TRUE(rules.escalate(a, 2 * minute));
  EXPECT_EQ(a.escalation_level, 1u);
  EXPECT_EQ(a.notify_time_ms, 2 * minute);
  EXPECT_FALSE(rules.escalate(a, 3 * minute)) << "the time counts from the last notification";
  EXPECT_TRUE(rules.escalate(a, 4 * minute));
  EXPECT_EQ(a.escalation_level, 2u);
  rules.acknowledge(a, "nurse-1", "on my way", 4 * minute + 1);
  EXPECT_EQ(a.state, alert_state::acknowledged);
  EXPECT_EQ(a.acknowledged_by, "nurse-1");
  EXPECT_EQ(a.acknowledge_time_ms, 4 * minute + 1);
  EXPECT_FALSE(rules.escalate(a, 60 * minute)) << "acknowledged alerts do not escalate";
}

TEST(alert_lifecycle, lower_priorities_and_silenced_alerts_do_not_escalate) {
  auto medium = alert(models::priority::medium);
  rules.raise(medium, 0, {});
  EXPECT_FALSE(rules.escalate(medium, 60 * minute));
  auto silenced = alert(models::priority::high);
  rules.raise(silenced, 0, {silence(10 * minute)});
  EXPECT_FALSE(rules.escalate(silenced, 5 * minute));
  EXPECT_TRUE(rules.escalate(silenced, 10 * minute)) << "once the silence ended";
}

TEST(alert_lifecycle, a_higher_priority_is_a_new_notification) {
  auto a = alert(models::priority::medium);
  rules.raise(a, 0, {});
  EXPECT_FALSE(rules.update(a, models::priority::medium, 88, "SpO2 88 %", 0, minute));
  EXPECT_EQ(a.notify_time_ms, 0);
  EXPECT_EQ(a.value, 88);
  EXPECT_TRUE(rules.update(a, models::priority::high, 84, "SpO2 84 %", 0, 3 * minute));
  EXPECT_EQ(a.notify_time_ms, 3 * minute);
  EXPECT_EQ(a.message, "SpO2 84 %");
  EXPECT_FALSE(rules.escalate(a, 4 * minute)) << "escalation restarts from the new notification";
  EXPECT_FALSE(rules.update(a, models::priority::medium, 89, "SpO2 89 %", 0, 5 * minute));
  EXPECT_EQ(a.level, models::priority::medium);
}

TEST(alert_lifecycle, silences_are_bounded_and_apply_to_their_patient_and_metric) {
  EXPECT_FALSE(alert_lifecycle::silence_allowed(silence(1'000), 1'000)) << "must end in the future";
  EXPECT_TRUE(alert_lifecycle::silence_allowed(silence(1'000 + max_silence_ms), 1'000));
  EXPECT_FALSE(alert_lifecycle::silence_allowed(silence(1'001 + max_silence_ms), 1'000)) << "at most 4 h";
  auto spo2 = alert(models::priority::high);
  auto other_patient = alert(models::priority::high);
  other_patient.patient = "tenants/h1/patients/p2";
  EXPECT_FALSE(alert_lifecycle::apply_silence(spo2, silence(9'000, models::metric::heart_rate)));
  EXPECT_EQ(spo2.silenced_until_ms, 0);
  EXPECT_TRUE(alert_lifecycle::apply_silence(spo2, silence(9'000, models::metric::spo2)));
  EXPECT_EQ(spo2.silenced_until_ms, 9'000);
  EXPECT_FALSE(alert_lifecycle::apply_silence(other_patient, silence(9'000)));
}

TEST(alert_lifecycle, resolving_records_how) {
  auto automatic = alert(models::priority::high);
  alert_lifecycle::resolve(automatic, 96, 7'000);
  EXPECT_EQ(automatic.state, alert_state::resolved);
  EXPECT_EQ(automatic.value, 96);
  EXPECT_EQ(automatic.resolve_time_ms, 7'000);
  EXPECT_TRUE(automatic.resolved_by.empty());
  auto by_hand = alert(models::priority::high);
  alert_lifecycle::resolve_by_hand(by_hand, "dr-1", "probe reseated", 8'000);
  EXPECT_EQ(by_hand.state, alert_state::resolved);
  EXPECT_EQ(by_hand.resolved_by, "dr-1");
  EXPECT_EQ(by_hand.resolve_note, "probe reseated");
  EXPECT_EQ(by_hand.resolve_time_ms, 8'000);
}
