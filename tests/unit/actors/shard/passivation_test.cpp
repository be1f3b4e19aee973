// Passivation of idle twins (docs/adr/0035): a twin unused for the idle
// time is written and stopped; the next reading or query activates it with
// the same state; timers of a passivated patient (its devices' offline
// check) still run; nothing is lost across passivations and restarts.

#include <algorithm>

#include <gtest/gtest.h>

#include <prometheus/registry.h>

#include "tests/unit/actors/ingest/actor_core_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;
using models::metric;

namespace {

const std::string patient_a = "tenants/h1/patients/a";
const std::string monitor_a = "tenants/h1/devices/mon-a";

ingest_reading r(uint64_t seq, int64_t t, metric m, double v) {
  return ingest_reading{seq, t, v, 0, m};
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

class passivation_test : public healthtwin::testing::actor_core_fixture {
protected:
  void SetUp() override {
    ctx_.settings.passivate_after_ms = 200;
    actor_core_fixture::SetUp();
    add_patient(patient_a);
    add_device(monitor_a, patient_a);
  }

  void TearDown() override {
    actor_core_fixture::TearDown();
    ctx_.clock = nullptr;
  }

  // Restarts the core with `clock_` as the twins' node clock, ticking their
  // devices every 20 ms; the clock's start.
  int64_t start_on_test_clock() {
    stop();
    clock_ = wall_ms();
    ctx_.clock = [this] { return clock_.load(); };
    ctx_.settings.device_tick_ms = 20;
    start();
    return clock_.load();
  }

  // Waits until no twin is live (both passivated); false after 10 s.
  bool await_passivated() {
    for (int i = 0; i < 2000; ++i) {
      if (counters_.patients.load() == 0 && counters_.devices.load() == 0)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // The value of counter or gauge `name` (with label kind=`kind` when
  // given); -1 when there is none.
  double metric(const std::string& name, const std::string& kind = {}) {
    for (auto& family : metrics_->Collect())
      if (family.name == name)
        for (auto& m : family.metric)
          if (kind.empty() || std::any_of(m.label.begin(), m.label.end(), [&](auto& label) {
                return label.name == "kind" && label.value == kind;
              }))
            return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    return -1;
  }

  // healthtwin_twins_passivated_total{kind}.
  double passivated(const std::string& kind) { return metric("healthtwin_twins_passivated_total", kind); }

  std::vector<alert_record> of_kind(models::alert_kind k) {
    std::vector<alert_record> out;
    for (auto& a : alerts("h1"))
      if (a.kind == k)
        out.push_back(a);
    return out;
  }

  std::atomic<int64_t> clock_{0};

  template <class Pred>
  std::vector<alert_record> await_alerts(models::alert_kind k, Pred pred) {
    std::vector<alert_record> out;
    for (int i = 0; i < 1000; ++i) {
      out = of_kind(k);
      if (pred(out))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return out;
  }
};

TEST_F(passivation_test, an_idle_twin_is_passivated_and_activated_again_by_a_query_with_its_state) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 72), r(2, 1000, metric::spo2, 97),
                     r(3, 2000, metric::heart_rate, 75), r(4, 2000, metric::battery, 81)});
  auto before = patient(patient_a);
  auto device_before = device(monitor_a);
  ASSERT_EQ(before.readings_applied, 3u);
  ASSERT_EQ(counters_.patients.load(), 1u);

  ASSERT_TRUE(await_passivated());
  EXPECT_EQ(passivated("patient"), 1);
  EXPECT_EQ(passivated("device"), 1);

  auto after = patient(patient_a);
  EXPECT_EQ(counters_.patients.load(), 1u);  // the query activated it
  EXPECT_EQ(after.readings_applied, before.readings_applied);
  EXPECT_EQ(after.ward, "ICU-1");
  EXPECT_EQ(after.devices, before.devices);
  ASSERT_EQ(after.vitals.size(), before.vitals.size());
  for (size_t i = 0; i < after.vitals.size(); ++i) {
    EXPECT_EQ(after.vitals[i].metric, before.vitals[i].metric);
    EXPECT_EQ(after.vitals[i].value, before.vitals[i].value);
    EXPECT_EQ(after.vitals[i].time_ms, before.vitals[i].time_ms);
  }
  EXPECT_EQ(after.news2.total, before.news2.total);
  auto device_after = device(monitor_a);
  EXPECT_EQ(device_after.readings_accepted, device_before.readings_accepted);
  EXPECT_EQ(device_after.last_sequence, 4u);
  EXPECT_EQ(device_after.battery_percent, 81);
  EXPECT_EQ(device_after.applied_position, device_before.applied_position);

  // Readings after an activation are applied on top; a resend is not.
  ASSERT_TRUE(await_passivated());
  auto res = ingest(monitor_a, {r(4, 2000, metric::battery, 81), r(5, 3000, metric::heart_rate, 80)});
  EXPECT_EQ(res.accepted, 1u);
  EXPECT_EQ(patient(patient_a).readings_applied, 4u);
  EXPECT_EQ(device(monitor_a).readings_accepted, 5u);
}

TEST_F(passivation_test, a_twin_in_use_is_not_passivated) {
  for (uint64_t i = 1; i <= 25; ++i) {
    ingest(monitor_a, {r(i, static_cast<int64_t>(i) * 1000, metric::heart_rate, 70)});
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  EXPECT_EQ(passivated("patient"), 0);
  EXPECT_EQ(passivated("device"), 0);
  EXPECT_EQ(patient(patient_a).readings_applied, 25u);
}

// Open alerts are kept by the conditions in the snapshot: the recovery
// after a passivation resolves the alerts raised before it, under the same
// names, and raises nothing new.
TEST_F(passivation_test, alerts_raised_before_a_passivation_are_resolved_after_it) {
  ingest(monitor_a, {r(1, 1000, metric::spo2, 97)});
  ingest(monitor_a, {r(2, 200000, metric::spo2, 88)});
  ingest(monitor_a, {r(3, 208000, metric::spo2, 88)});
  ingest(monitor_a, {r(4, 215000, metric::spo2, 87)});
  ingest(monitor_a, {r(5, 238000, metric::spo2, 87)});
  std::vector<alert_record> open;
  for (int i = 0; i < 200 && open.size() < 2; ++i) {
    open = alerts("h1");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(open.size(), 2u);

  ASSERT_TRUE(await_passivated());
  ingest(monitor_a, {r(6, 240000, metric::spo2, 96)});
  ASSERT_TRUE(await_passivated());
  ingest(monitor_a, {r(7, 285000, metric::spo2, 96)});
  ingest(monitor_a, {r(8, 313000, metric::spo2, 96)});
  ASSERT_TRUE(await_passivated());
  ingest(monitor_a, {r(9, 373000, metric::spo2, 96)});
  std::vector<alert_record> all;
  for (int i = 0; i < 400; ++i) {
    all = alerts("h1");
    if (all.size() == 2 && all[0].state == alert_state::resolved &&
        all[1].state == alert_state::resolved)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(all.size(), 2u);
  for (auto& a : all) {
    EXPECT_EQ(a.state, alert_state::resolved);
    EXPECT_TRUE(a.name == open[0].name || a.name == open[1].name) << a.name;
  }
}

// The offline check of a passivated patient's device is held by its shard:
// the twin is woken when the device is due, raises one offline alert, and
// is passivated again; activating it later (a query) keeps that alert open
// instead of granting the device a new grace.
TEST_F(passivation_test, a_passivated_patients_silent_device_is_still_reported_offline_once) {
  auto start_ms = start_on_test_clock();
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)});
  ASSERT_TRUE(await_passivated());
  EXPECT_TRUE(of_kind(models::alert_kind::device_offline).empty());

  clock_ = start_ms + 61'000;
  auto offline = await_alerts(models::alert_kind::device_offline, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(offline.size(), 1u);
  EXPECT_EQ(offline[0].device, monitor_a);
  EXPECT_EQ(offline[0].state, alert_state::active);
  ASSERT_TRUE(await_passivated());
  EXPECT_GE(passivated("patient"), 2);

  clock_ = start_ms + 600'000;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // ticks and sweeps pass
  EXPECT_EQ(counters_.patients.load(), 0u);  // offline already: no more wake-ups
  (void)patient(patient_a);                  // activated by a query
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  offline = of_kind(models::alert_kind::device_offline);
  ASSERT_EQ(offline.size(), 1u);
  EXPECT_EQ(offline[0].state, alert_state::active);

  // The sequencer stamps a reading's arrival with the wall clock: the twins'
  // clock returns to it, or a health tick (every 20 ms) would find the
  // device silent since its arrival, 599 test seconds ago.
  clock_ = wall_ms();
  ingest(monitor_a, {r(2, 2000, metric::heart_rate, 70)});
  offline = await_alerts(models::alert_kind::device_offline, [](auto& v) {
    return v.size() == 1 && v[0].state == alert_state::resolved;
  });
  ASSERT_EQ(offline.size(), 1u);
  EXPECT_EQ(offline[0].state, alert_state::resolved);
  stop();
}

// A device attached to a passivated patient is watched from its attachment.
TEST_F(passivation_test, a_device_attached_while_the_patient_is_passivated_is_watched) {
  auto start_ms = start_on_test_clock();
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)});
  ASSERT_TRUE(await_passivated());
  clock_ = start_ms + 30'000;
  const std::string pump = "tenants/h1/devices/pump-1";
  add_device(pump, patient_a, models::device_type::infusion_pump);
  // The attachment activates the twin (it watches the pump from now), which
  // is passivated again.
  for (int i = 0; i < 2000 && passivated("patient") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(passivated("patient"), 2);
  // The monitor, silent since the start, is due first; the pump 30 s later.
  clock_ = start_ms + 61'000;
  auto offline = await_alerts(models::alert_kind::device_offline, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(offline.size(), 1u);
  EXPECT_EQ(offline[0].device, monitor_a);
  ASSERT_TRUE(await_passivated());
  clock_ = start_ms + 91'000;  // the pump was attached 61 s ago and never sent
  offline = await_alerts(models::alert_kind::device_offline, [](auto& v) { return v.size() == 2; });
  ASSERT_EQ(offline.size(), 2u);
  EXPECT_TRUE(offline[0].device == pump || offline[1].device == pump);
  stop();
}

TEST_F(passivation_test, passivated_twins_keep_everything_across_checkpoints_and_restarts) {
  settings_.checkpoint_interval = std::chrono::milliseconds(30);
  restart();
  uint64_t seq = 0;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 5; ++i, ++seq)
      ingest(monitor_a, {r(seq + 1, static_cast<int64_t>(seq + 1) * 1000, metric::heart_rate, 70)});
    if (round % 2 == 0) {
      ASSERT_TRUE(await_passivated());
    }
    restart();
  }
  EXPECT_EQ(patient(patient_a).readings_applied, seq);
  EXPECT_EQ(device(monitor_a).readings_accepted, seq);
  auto res = ingest(monitor_a, {r(seq, static_cast<int64_t>(seq) * 1000, metric::heart_rate, 70)});
  EXPECT_EQ(res.accepted, 0u);  // a resend of the last is a duplicate
}

TEST_F(passivation_test, zero_never_passivates) {
  stop();
  ctx_.settings.passivate_after_ms = 0;
  start();
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)});
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(counters_.patients.load(), 1u);
  EXPECT_EQ(passivated("patient"), 0);
}

// The sequencer's directory is bounded too: an idle device's entry goes
// once a checkpoint stored its window, and is read again on its next
// reading, which still tells a resend from a new reading.
TEST_F(passivation_test, an_evicted_directory_entry_still_refuses_resent_readings) {
  settings_.checkpoint_interval = std::chrono::milliseconds(20);
  settings_.directory_idle = std::chrono::milliseconds(100);
  restart();
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 71),
                     r(3, 3000, metric::heart_rate, 72)});
  for (int i = 0; i < 2000 && metric("healthtwin_ingest_directory_evictions_total") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(metric("healthtwin_ingest_directory_evictions_total"), 1);
  EXPECT_EQ(metric("healthtwin_ingest_directory_entries"), 0);

  auto resent = ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71), r(3, 3000, metric::heart_rate, 72)});
  EXPECT_EQ(resent.accepted, 0u);
  auto fresh = ingest(monitor_a, {r(4, 4000, metric::heart_rate, 73)});
  EXPECT_EQ(fresh.accepted, 1u);
  EXPECT_EQ(patient(patient_a).readings_applied, 4u);
  EXPECT_EQ(device(monitor_a).readings_accepted, 4u);
}
