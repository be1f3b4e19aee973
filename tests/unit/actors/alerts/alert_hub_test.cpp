// The alert lifecycle in the hub, on an injected clock: escalation of
// unacknowledged alerts, silences, resolving by hand, and that every change
// survives a restart.
#include "actors/alerts/alert_hub.hpp"

#include <gtest/gtest.h>

#include "storage/alert_table.hpp"
#include "tests/unit/actors/ingest/actor_core_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;
using models::metric;
using models::priority;

namespace {

const std::string patient_a = "tenants/h1/patients/a";

alert_record make_alert(const std::string& id, metric m, priority level) {
  alert_record a;
  a.name = patient_a + "/alerts/" + id;
  a.patient = patient_a;
  a.ward = "ICU-1";
  a.kind = models::alert_kind::threshold;
  a.subject = m;
  a.level = level;
  a.value = 160;
  a.message = "heart_rate high: 160 /min";
  a.raise_time_ms = 5000;
  return a;
}

}  // namespace

class alert_hub_test : public healthtwin::testing::actor_core_fixture {
protected:
  void SetUp() override {
    actor_core_fixture::SetUp();
    subscribe();
  }

  void subscribe() {
    sink_ = std::make_shared<alert_sink>(alert_filter{"h1", {}, priority::none, {}, 0});
    caf::scoped_actor self{*sys_};
    self->request(hub_, std::chrono::seconds(5), alert_sub_atom::value, sink_)
        .receive([](uint64_t) {}, [](caf::error& e) { FAIL() << to_string(e); });
  }

  void raise(const alert_record& a) { caf::anon_send(hub_, alert_raise_atom::value, a); }

  // Runs the escalation check at the test's clock and waits for its events.
  void escalate_at(int64_t t) {
    clock_ms_ = t;
    caf::anon_send(hub_, alert_escalate_atom::value);
    sync();
  }

  // Every message sent before has been handled, and its events flushed.
  void sync() {
    caf::scoped_actor self{*sys_};
    self->request(hub_, std::chrono::seconds(5), alert_count_atom::value)
        .receive([](alert_counts) {}, [](caf::error& e) { FAIL() << to_string(e); });
    self->request(hub_, std::chrono::seconds(5), alert_count_atom::value)
        .receive([](alert_counts) {}, [](caf::error& e) { FAIL() << to_string(e); });
  }

  std::vector<alert_event> events() {
    sync();
    std::vector<alert_event> out;
    while (auto e = sink_->pop(std::chrono::milliseconds(50)))
      out.push_back(std::move(*e));
    return out;
  }

  template <class T, class... Ts>
  caf::expected<T> ask(Ts&&... xs) {
    caf::scoped_actor self{*sys_};
    caf::expected<T> out{caf::sec::request_timeout};
    self->request(hub_, std::chrono::seconds(5), std::forward<Ts>(xs)...)
        .receive([&](T& v) { out = std::move(v); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  // The alert as persisted.
  alert_record stored(const std::string& name) {
    auto id = models::parse_alert_name(name);
    alert_record a;
    auto bytes = storage::alert_table{db()}.get(id->owner, id->id);
    EXPECT_TRUE(bytes && *bytes && parse(**bytes, a)) << name;
    return a;
  }

  alert_sink_ptr sink_;
};

TEST_F(alert_hub_test, unacknowledged_high_alerts_escalate_until_acknowledged) {
  auto t0 = clock_ms_.load();
  raise(make_alert("1", metric::heart_rate, priority::high));
  raise(make_alert("2", metric::spo2, priority::medium));  // below the escalation priority
  auto raised = events();
  ASSERT_EQ(raised.size(), 2u);
  EXPECT_EQ(raised[0].alert.notify_time_ms, t0);

  escalate_at(t0 + 119'000);
  EXPECT_TRUE(events().empty());
  escalate_at(t0 + 120'000);
  auto first = events();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].type, alert_event_type::escalated);
  EXPECT_EQ(first[0].alert.name, patient_a + "/alerts/1");
  EXPECT_EQ(first[0].alert.escalation_level, 1u);
  escalate_at(t0 + 200'000);
  EXPECT_TRUE(events().empty());  // the next one counts from the re-notification
  escalate_at(t0 + 240'000);
  auto second = events();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].alert.escalation_level, 2u);

  auto acked = ask<alert_record>(alert_ack_atom::value,
                                 alert_action{patient_a + "/alerts/1", "nurse-1", "on my way"});
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->escalation_level, 2u);
  EXPECT_EQ(events().size(), 1u);  // acknowledged
  escalate_at(t0 + 1'000'000);
  EXPECT_TRUE(events().empty());

  // The escalation level is persisted with the alert.
  restart();
  EXPECT_EQ(stored(patient_a + "/alerts/1").escalation_level, 2u);
}

TEST_F(alert_hub_test, a_silence_marks_open_and_new_alerts_holds_escalation_and_survives_restart) {
  auto t0 = clock_ms_.load();
  raise(make_alert("1", metric::heart_rate, priority::high));
  raise(make_alert("2", metric::spo2, priority::high));
  events();
  alert_silence s{patient_a, metric::heart_rate, t0 + 600'000, "dr-who", "known AF"};
  auto silenced = ask<std::vector<alert_record>>(alert_silence_atom::value, s);
  ASSERT_TRUE(silenced);
  ASSERT_EQ(silenced->size(), 1u);
  EXPECT_EQ((*silenced)[0].name, patient_a + "/alerts/1");
  EXPECT_EQ((*silenced)[0].silenced_until_ms, t0 + 600'000);
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, alert_event_type::silenced);

  // Only the unsilenced alert escalates.
  escalate_at(t0 + 130'000);
  ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].alert.name, patient_a + "/alerts/2");

  // The silence is persisted: a new heart-rate alert after a restart is
  // silenced too, one on another metric is not.
  restart();
  subscribe();
  clock_ms_ = t0 + 200'000;
  raise(make_alert("3", metric::heart_rate, priority::high));
  raise(make_alert("4", metric::respiration_rate, priority::high));
  ev = events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].alert.silenced_until_ms, t0 + 600'000);
  EXPECT_EQ(ev[1].alert.silenced_until_ms, 0);

  // Once the silence ends, escalation resumes.
  escalate_at(t0 + 600'001);
  ev = events();
  std::set<std::string> escalated;
  for (auto& e : ev)
    escalated.insert(e.alert.name);
  EXPECT_TRUE(escalated.count(patient_a + "/alerts/1"));
  EXPECT_TRUE(escalated.count(patient_a + "/alerts/3"));
}

TEST_F(alert_hub_test, a_silence_out_of_range_is_refused) {
  auto t0 = clock_ms_.load();
  alert_silence past{patient_a, metric::heart_rate, t0 - 1, "dr-who", ""};
  auto r = ask<std::vector<alert_record>>(alert_silence_atom::value, past);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), caf::make_error(alert_errc::invalid_silence));
  alert_silence too_long{patient_a, {}, t0 + max_silence_ms + 1, "dr-who", ""};
  EXPECT_FALSE((ask<std::vector<alert_record>>(alert_silence_atom::value, too_long)));
}

TEST_F(alert_hub_test, resolving_by_hand_records_who_and_is_refused_twice) {
  EXPECT_EQ((ask<alert_record>(alert_resolve_by_atom::value,
                               alert_action{patient_a + "/alerts/9", "dr-who", ""}))
                .error(),
            caf::make_error(alert_errc::not_found));
  raise(make_alert("1", metric::heart_rate, priority::high));
  events();
  clock_ms_ = 2'000'000;
  auto r = ask<alert_record>(alert_resolve_by_atom::value,
                             alert_action{patient_a + "/alerts/1", "dr-who", "artefact"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, alert_state::resolved);
  EXPECT_EQ(r->resolved_by, "dr-who");
  EXPECT_EQ(r->resolve_note, "artefact");
  EXPECT_EQ(r->resolve_time_ms, 2'000'000);
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, alert_event_type::resolved);
  EXPECT_EQ((ask<alert_record>(alert_resolve_by_atom::value,
                               alert_action{patient_a + "/alerts/1", "dr-who", ""}))
                .error(),
            caf::make_error(alert_errc::already_resolved));
  // A late update from the twin does not reopen it.
  caf::anon_send(hub_, alert_update_atom::value,
                 alert_update{patient_a + "/alerts/1", priority::high, 170.0, "x", 0});
  EXPECT_TRUE(events().empty());
  restart();
  auto a = stored(patient_a + "/alerts/1");
  EXPECT_EQ(a.state, alert_state::resolved);
  EXPECT_EQ(a.resolved_by, "dr-who");
  // Still listed among the recently resolved after the restart.
  auto listed = alerts("h1");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state, alert_state::resolved);
  EXPECT_EQ(listed[0].resolved_by, "dr-who");
}

TEST(alert_filter, selects_by_tenant_ward_priority_patient_and_state) {
  alert_record a;
  a.name = "tenants/h1/patients/p1/alerts/a1";
  a.patient = "tenants/h1/patients/p1";
  a.ward = "ICU-3";
  a.level = priority::medium;
  a.state = alert_state::acknowledged;
  alert_filter f{"h1", {}, priority::none, {}, 0};
  EXPECT_TRUE(f.matches(a));
  f.patient = "tenants/h1/patients/p2";
  EXPECT_FALSE(f.matches(a));
  f.patient = a.patient;
  EXPECT_TRUE(f.matches(a));
  f.states = 1u << static_cast<unsigned>(alert_state::active);
  EXPECT_FALSE(f.matches(a));
  f.states |= 1u << static_cast<unsigned>(alert_state::acknowledged);
  EXPECT_TRUE(f.matches(a));
  f.min_priority = priority::high;
  EXPECT_FALSE(f.matches(a));
  f.min_priority = priority::none;
  f.ward = "ICU-4";
  EXPECT_FALSE(f.matches(a));
  f.ward.clear();
  f.tenant = "h2";
  EXPECT_FALSE(f.matches(a));
}

TEST_F(alert_hub_test, reading_to_alert_latency_counts_alerts_of_readings_committed_by_this_run) {
  auto histogram = [&]() -> std::pair<uint64_t, double> {
    sync();
    for (auto& family : metrics_->Collect())
      if (family.name == "healthtwin_alerts_reading_to_alert_seconds")
        return {family.metric.at(0).histogram.sample_count, family.metric.at(0).histogram.sample_sum};
    return {0, -1};
  };
  auto started = clock_ms_.load();
  auto fresh = make_alert("fresh", metric::heart_rate, priority::high);
  fresh.committed_ms = started;
  clock_ms_ = started + 50;
  raise(fresh);
  auto [count, sum] = histogram();
  EXPECT_EQ(count, 1u);
  EXPECT_DOUBLE_EQ(sum, 0.05);
  auto replayed = make_alert("replayed", metric::spo2, priority::high);
  replayed.committed_ms = started - 1;  // committed before this hub started: a log replay
  raise(replayed);
  auto timer = make_alert("timer", metric::respiration_rate, priority::medium);  // committed_ms 0
  raise(timer);
  EXPECT_EQ(histogram().first, 1u);
  EXPECT_EQ(events().size(), 3u) << "all three are raised all the same";
}
