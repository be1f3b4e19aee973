#include "actors/ingest/ingest_sequencer.hpp"

#include <map>

#include <gtest/gtest.h>

#include "healthtwin/internal/records.pb.h"
#include "storage/alert_table.hpp"
#include "storage/erasure.hpp"
#include "storage/errc.hpp"
#include "storage/ingest_log.hpp"
#include "storage/key_codec.hpp"
#include "storage/registry.hpp"
#include "storage/series_table.hpp"
#include "storage/twin_table.hpp"
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

}  // namespace

class ingest_sequencer_test : public healthtwin::testing::actor_core_fixture {
protected:
  void SetUp() override {
    actor_core_fixture::SetUp();
    add_patient(patient_a);
    add_device(monitor_a, patient_a);
  }

  // While stopped: one heart rate for `device` (and `patient`) in a log
  // record after the last, as a crash before the next checkpoint leaves it.
  void append_to_log(const std::string& device, const std::string& patient, uint64_t sequence,
                     int64_t time_ms, double value, bool patient_only = false) {
    storage::ingest_log log{db()};
    auto p = *log.last_position();
    internal::LogRecord rec;
    rec.set_receive_time_ms(5000);
    auto* d = rec.add_devices();
    d->set_device(device);
    d->set_patient(patient);
    d->set_patient_only(patient_only);
    d->add_sequence(sequence);
    d->add_time_ms(time_ms);
    d->add_metric(static_cast<uint32_t>(metric::heart_rate));
    d->add_value(value);
    storage::write_batch wb{db()};
    storage::ingest_log::append(wb, p + 1, rec.SerializeAsString());
    ASSERT_FALSE(db().write(wb, true));
  }
};

TEST_F(ingest_sequencer_test, accepted_readings_reach_device_and_patient_twins) {
  auto res = ingest(monitor_a, {r(1, 1000, metric::heart_rate, 72), r(2, 1000, metric::spo2, 97),
                                r(3, 2000, metric::heart_rate, 75)});
  ASSERT_FALSE(res.error);
  EXPECT_EQ(res.accepted, 3u);
  EXPECT_TRUE(res.rejections.empty());
  auto p = patient(patient_a);
  EXPECT_EQ(p.ward, "ICU-1");
  EXPECT_EQ(p.readings_applied, 3u);
  ASSERT_EQ(p.vitals.size(), 2u);
  EXPECT_EQ(p.vitals[0].metric, metric::heart_rate);
  EXPECT_EQ(p.vitals[0].value, 75);
  EXPECT_EQ(p.vitals[0].time_ms, 2000);
  EXPECT_EQ(p.vitals[0].source_device, monitor_a);
  EXPECT_EQ(p.devices, std::vector<std::string>{monitor_a});
  auto d = device(monitor_a);
  EXPECT_EQ(d.last_sequence, 3u);
  EXPECT_EQ(d.readings_accepted, 3u);
  EXPECT_EQ(d.last_reading_time_ms, 2000);
  EXPECT_GT(d.last_receive_time_ms, 0);
}

TEST_F(ingest_sequencer_test, duplicates_and_unsupported_metrics_are_rejected_by_field) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 72)});
  auto res = ingest(monitor_a, {r(1, 1000, metric::heart_rate, 72),
                                r(2, 1000, metric::glucose, 90), r(3, 1000, metric::heart_rate, 73)});
  EXPECT_EQ(res.accepted, 1u);
  ASSERT_EQ(res.rejections.size(), 2u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::duplicate);
  EXPECT_EQ(res.rejections[0].field, "devices[0].sequence[0]");
  EXPECT_EQ(res.rejections[0].index, 0u);
  EXPECT_EQ(res.rejections[1].reason, rejection_reason::metric_not_supported);
  EXPECT_EQ(res.rejections[1].field, "devices[0].metric[1]");
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
}

TEST_F(ingest_sequencer_test, unknown_device_is_rejected_and_nothing_is_written) {
  auto before = seq_->last_position();
  auto res = ingest("tenants/h1/devices/ghost", {r(1, 1000, metric::heart_rate, 72)});
  EXPECT_EQ(res.accepted, 0u);
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::unknown_device);
  EXPECT_EQ(seq_->last_position(), before);
}

TEST_F(ingest_sequencer_test, readings_of_an_unassigned_device_update_only_the_device) {
  add_device("tenants/h1/devices/spare");
  auto res = ingest("tenants/h1/devices/spare", {r(1, 1000, metric::heart_rate, 72)});
  EXPECT_EQ(res.accepted, 1u);
  EXPECT_EQ(device("tenants/h1/devices/spare").readings_accepted, 1u);
  EXPECT_EQ(patient(patient_a).readings_applied, 0u);
}

TEST_F(ingest_sequencer_test, registry_refuses_duplicates_cross_tenant_and_double_assignment) {
  storage::patient_record p;
  p.name = patient_a;
  EXPECT_EQ(registry(create_patient{p}).error, ingest_errc::already_exists);
  add_patient("tenants/h2/patients/b");
  EXPECT_EQ(registry(assign_device{monitor_a, "tenants/h2/patients/b"}).error,
            ingest_errc::failed_precondition);
  add_device("tenants/h1/devices/free");
  EXPECT_EQ(registry(assign_device{"tenants/h1/devices/free", "tenants/h2/patients/b"}).error,
            ingest_errc::invalid_argument);
  EXPECT_EQ(registry(assign_device{"tenants/h1/devices/nope", patient_a}).error,
            ingest_errc::not_found);
  // Assigning again to the same patient is a no-op.
  EXPECT_FALSE(registry(assign_device{monitor_a, patient_a}).error);
}

// Registry commands queued together commit together; later ones must see
// what earlier ones of the same group wrote.
TEST_F(ingest_sequencer_test, registry_commands_in_one_group_see_each_other) {
  std::vector<std::future<registry_result>> results;
  auto submit = [&](registry_command cmd) {
    auto p = std::make_shared<std::promise<registry_result>>();
    results.push_back(p->get_future());
    seq_->submit(std::move(cmd), [p](registry_result&& r) { p->set_value(std::move(r)); });
  };
  storage::patient_record pat;
  pat.name = "tenants/h1/patients/g";
  pat.ward = "W";
  storage::device_record dev;
  dev.name = "tenants/h1/devices/g";
  submit(create_patient{pat});
  submit(create_device{dev});
  submit(assign_device{dev.name, pat.name});
  submit(create_device{dev});  // duplicate of a create still pending
  EXPECT_FALSE(results[0].get().error);
  EXPECT_FALSE(results[1].get().error);
  auto assigned = results[2].get();
  ASSERT_FALSE(assigned.error) << to_string(assigned.error);
  EXPECT_EQ(assigned.device.patient, pat.name);
  EXPECT_EQ(results[3].get().error, ingest_errc::already_exists);
  auto res = ingest(dev.name, {r(1, 1000, metric::heart_rate, 70)});
  EXPECT_EQ(res.accepted, 1u);
  auto view = patient(pat.name);
  EXPECT_EQ(view.devices, std::vector<std::string>{dev.name});
  EXPECT_EQ(view.readings_applied, 1u);
}

TEST_F(ingest_sequencer_test, unassign_stops_attribution_and_updates_the_patient) {
  ASSERT_FALSE(registry(assign_device{monitor_a, ""}).error);
  drain();
  auto res = ingest(monitor_a, {r(1, 1000, metric::heart_rate, 72)});
  EXPECT_EQ(res.accepted, 1u);
  auto p = patient(patient_a);
  EXPECT_EQ(p.readings_applied, 0u);
  EXPECT_TRUE(p.devices.empty());
}

TEST_F(ingest_sequencer_test, twins_and_history_survive_a_restart) {
  for (uint64_t s = 1; s <= 600; ++s)
    ingest(monitor_a, {r(s, static_cast<int64_t>(s) * 1000, metric::heart_rate, 60 + s % 30)});
  restart();
  auto p = patient(patient_a);
  EXPECT_EQ(p.readings_applied, 600u);
  EXPECT_EQ(device(monitor_a).last_sequence, 600u);
  // Duplicates are still recognised after the restart.
  auto dup = ingest(monitor_a, {r(600, 600'000, metric::heart_rate, 70)});
  EXPECT_EQ(dup.accepted, 0u);
  ASSERT_EQ(dup.rejections.size(), 1u);
  EXPECT_EQ(dup.rejections[0].reason, rejection_reason::duplicate);
}

// The sequencer stores each device's whole window with the checkpoint: after
// a restart a gap is still accepted once and a seen number still refused.
TEST_F(ingest_sequencer_test, the_whole_sequence_window_survives_a_restart) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 71),
                     r(5, 5000, metric::heart_rate, 74)});
  restart();
  auto res = ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71), r(3, 3000, metric::heart_rate, 72),
                                r(5, 5000, metric::heart_rate, 74), r(4, 4000, metric::heart_rate, 73)});
  EXPECT_EQ(res.accepted, 2u);  // 3 and 4 fill the gap
  ASSERT_EQ(res.rejections.size(), 2u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::duplicate);
  EXPECT_EQ(res.rejections[0].index, 0u);
  EXPECT_EQ(res.rejections[1].reason, rejection_reason::duplicate);
  EXPECT_EQ(res.rejections[1].index, 2u);
  EXPECT_EQ(device(monitor_a).last_sequence, 5u);
  EXPECT_EQ(patient(patient_a).readings_applied, 5u);
}

// A crash after the log write but before any snapshot: the next start
// replays the log tail into the twins, and each reading is applied once.
TEST_F(ingest_sequencer_test, recovery_replays_the_log_tail_exactly_once) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)});
  stop();  // clean: snapshots + checkpoint at position P
  reopen();
  storage::ingest_log log{db()};
  auto p = *log.last_position();
  for (uint64_t k = 1; k <= 2; ++k) {
    internal::LogRecord rec;
    rec.set_receive_time_ms(5000);
    auto* d = rec.add_devices();
    d->set_device(monitor_a);
    d->set_patient(patient_a);
    d->add_sequence(1 + k);
    d->add_time_ms(1000 + static_cast<int64_t>(k) * 1000);
    d->add_metric(static_cast<uint32_t>(metric::heart_rate));
    d->add_value(80 + static_cast<double>(k));
    storage::write_batch wb{db()};
    storage::ingest_log::append(wb, p + k, rec.SerializeAsString());
    ASSERT_FALSE(db().write(wb, true));
  }
  start();
  EXPECT_EQ(seq_->last_position(), p + 2);
  EXPECT_EQ(patient(patient_a).readings_applied, 3u);
  EXPECT_EQ(device(monitor_a).last_sequence, 3u);
  // The sequencer's window learned the replayed numbers too.
  auto dup = ingest(monitor_a, {r(3, 3000, metric::heart_rate, 82)});
  EXPECT_EQ(dup.rejections.size(), 1u);
  restart();
  EXPECT_EQ(patient(patient_a).readings_applied, 3u);
}

// A crash between the twins' snapshots and the checkpoint write leaves
// snapshots newer than the checkpoint: replay then re-delivers batches the
// twins already applied, and they must skip them.
TEST_F(ingest_sequencer_test, replay_skips_batches_already_in_a_twin_snapshot) {
  auto first = seq_->last_position() + 1;
  for (uint64_t s = 1; s <= 3; ++s)
    ingest(monitor_a, {r(s, static_cast<int64_t>(s) * 1000, metric::heart_rate, 70 + s)});
  stop();  // snapshots and checkpoint at first + 2
  reopen();
  storage::write_batch wb{db()};
  storage::ingest_log::advance_checkpoint(wb, first);
  for (uint64_t k = 1; k <= 2; ++k) {
    internal::LogRecord rec;
    auto* d = rec.add_devices();
    d->set_device(monitor_a);
    d->set_patient(patient_a);
    d->add_sequence(1 + k);
    d->add_time_ms(static_cast<int64_t>(1 + k) * 1000);
    d->add_metric(static_cast<uint32_t>(metric::heart_rate));
    d->add_value(70 + static_cast<double>(1 + k));
    storage::ingest_log::append(wb, first + k, rec.SerializeAsString());
  }
  ASSERT_FALSE(db().write(wb, true));
  start();
  EXPECT_EQ(patient(patient_a).readings_applied, 3u);
  EXPECT_EQ(device(monitor_a).readings_accepted, 3u);
  caf::scoped_actor self{*sys_};
  series_cursor c;
  self->request(shards_[models::shard_of(patient_a, shards_count())], std::chrono::seconds(5),
                series_atom::value,
                series_query{patient_a, static_cast<uint8_t>(metric::heart_rate)})
      .receive([&](series_cursor& x) { c = std::move(x); },
               [&](caf::error& e) { FAIL() << to_string(e); });
  EXPECT_EQ(c.open_samples.size(), 3u);
}

// A replay applies device entries without activating device twins: the
// states wait in their shard and the next checkpoint writes them, so they
// are in the snapshots without the twin ever running.
TEST_F(ingest_sequencer_test, a_replay_reaches_device_snapshots_without_activating_twins) {
  const std::string monitor_b = "tenants/h1/devices/mon-b";
  add_device(monitor_b, patient_a);
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)});
  stop();
  reopen();
  for (uint64_t s = 2; s <= 4; ++s)
    append_to_log(monitor_a, patient_a, s, static_cast<int64_t>(s) * 1000, 70);
  append_to_log(monitor_b, patient_a, 7, 9000, 75);
  start();
  auto live = [&] {
    caf::scoped_actor self{*sys_};
    uint64_t devices = 0;
    for (auto& shard : shards_)
      self->request(shard, std::chrono::seconds(5), count_atom::value)
          .receive([&](twin_counts& c) { devices += c.devices; },
                   [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return devices;
  };
  EXPECT_EQ(live(), 0u) << "a replay activated device twins";
  EXPECT_EQ(patient(patient_a).readings_applied, 5u);  // patient twins do apply
  stop();  // the final checkpoint writes the replayed states
  reopen();
  storage::ingest_log log{db()};
  EXPECT_EQ(*log.checkpoint(), *log.last_position()) << "nothing left to replay";
  start();
  auto a = device(monitor_a);
  EXPECT_EQ(a.readings_accepted, 4u);
  EXPECT_EQ(a.last_sequence, 4u);
  EXPECT_EQ(a.last_reading_time_ms, 4000);
  auto b = device(monitor_b);
  EXPECT_EQ(b.readings_accepted, 1u);
  EXPECT_EQ(b.last_sequence, 7u);
  EXPECT_EQ(b.last_receive_time_ms, 5000);
}

// A replay does not read device windows: what it admitted is merged with
// the stored window by the checkpoint that writes it, or by the device's
// first lookup, so no number accepted before or during the tail is
// accepted again.
TEST_F(ingest_sequencer_test, a_replayed_window_is_merged_with_the_stored_one) {
  const std::string monitor_b = "tenants/h1/devices/mon-b";
  add_device(monitor_b, patient_a);
  for (auto* d : {&monitor_a, &monitor_b})
    ingest(*d, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 70)});
  stop();
  reopen();
  append_to_log(monitor_a, patient_a, 5, 5000, 70);
  append_to_log(monitor_b, patient_a, 5, 5000, 70);
  start();
  // monitor_b: merged on its first lookup.
  auto b = ingest(monitor_b, {r(1, 1000, metric::heart_rate, 70), r(5, 5000, metric::heart_rate, 70),
                              r(3, 3000, metric::heart_rate, 70)});
  ASSERT_EQ(b.rejections.size(), 2u);
  EXPECT_EQ(b.rejections[0].index, 0u);
  EXPECT_EQ(b.rejections[1].index, 1u);
  // monitor_a: untouched until the final checkpoint, which merges it.
  stop();
  reopen();
  start();
  auto a = ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 70),
                              r(5, 5000, metric::heart_rate, 70), r(4, 4000, metric::heart_rate, 70)});
  ASSERT_EQ(a.rejections.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i)
    EXPECT_EQ(a.rejections[i].reason, rejection_reason::duplicate) << i;
  EXPECT_EQ(device(monitor_a).readings_accepted, 4u);
}

// A replayed device whose twin activates before the checkpoint (a query or
// new readings) takes its replayed state over: nothing applied twice or lost.
TEST_F(ingest_sequencer_test, a_device_twin_activated_after_a_replay_takes_the_replayed_state) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)});
  stop();
  reopen();
  append_to_log(monitor_a, patient_a, 2, 2000, 71);
  append_to_log(monitor_a, patient_a, 3, 3000, 72);
  start();
  ingest(monitor_a, {r(4, 4000, metric::heart_rate, 73)});  // activates the twin
  EXPECT_EQ(device(monitor_a).readings_accepted, 4u);
  restart();
  EXPECT_EQ(device(monitor_a).readings_accepted, 4u);
  EXPECT_EQ(device(monitor_a).last_sequence, 4u);
  EXPECT_EQ(patient(patient_a).readings_applied, 4u);
}

// The shard applies a replayed device entry with the twin's own logic, so a
// device streaming without a patient raises its alert during a replay too.
TEST_F(ingest_sequencer_test, a_replayed_unassigned_device_raises_its_alert) {
  const std::string loose = "tenants/h1/devices/loose";
  add_device(loose);
  stop();
  reopen();
  append_to_log(loose, {}, 1, 1000, 70);
  start();
  std::vector<alert_record> found;
  for (int i = 0; i < 400 && found.empty(); ++i) {
    for (auto& x : alerts("h1"))
      if (x.kind == models::alert_kind::device_unassigned)
        found.push_back(x);
    if (found.empty())
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].device, loose);
  stop();
  reopen();
  start();  // the flag reached the snapshot: no second alert on new readings
  ingest(loose, {r(2, 2000, metric::heart_rate, 71)});
  size_t n = 0;
  for (auto& x : alerts("h1"))
    n += x.kind == models::alert_kind::device_unassigned;
  EXPECT_EQ(n, 1u);
}

TEST_F(ingest_sequencer_test, clean_stop_checkpoints_and_truncates_the_log) {
  for (uint64_t s = 1; s <= 5; ++s)
    ingest(monitor_a, {r(s, static_cast<int64_t>(s) * 1000, metric::heart_rate, 70)});
  stop();
  reopen();
  storage::ingest_log log{db()};
  EXPECT_EQ(*log.checkpoint(), *log.last_position());
  int records = 0;
  ASSERT_FALSE(log.replay(0, [&](uint64_t, std::string_view) { return ++records, true; }));
  EXPECT_EQ(records, 0);
  start();
}

TEST_F(ingest_sequencer_test, periodic_checkpoint_advances_while_running) {
  stop();
  settings_.checkpoint_interval = std::chrono::milliseconds(10);
  start();
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)});
  storage::ingest_log log{db()};
  for (int i = 0; i < 500 && *log.checkpoint() < seq_->last_position(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(*log.checkpoint(), seq_->last_position());
}

// Under heavy load the log is checkpointed by volume, long before the
// checkpoint interval: what a crash would replay stays bounded.
TEST_F(ingest_sequencer_test, a_checkpoint_also_follows_a_number_of_readings) {
  stop();
  settings_.checkpoint_interval = std::chrono::hours(1);
  settings_.checkpoint_every_readings = 1'000;
  start();
  storage::ingest_log log{db()};
  auto batch = [](uint64_t first, size_t n) {
    std::vector<ingest_reading> rs;
    for (uint64_t s = first; s < first + n; ++s)
      rs.push_back(r(s, static_cast<int64_t>(s) * 1000, metric::heart_rate, 70));
    return rs;
  };
  auto wait_for_checkpoint = [&] {
    for (int i = 0; i < 500 && *log.checkpoint() < seq_->last_position(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  ingest(monitor_a, batch(1, 10));  // the first commit after a start is checkpointed at once
  wait_for_checkpoint();
  auto before = *log.checkpoint();
  ASSERT_EQ(before, seq_->last_position());
  ingest(monitor_a, batch(11, 900));  // below the threshold: nothing due for an hour
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(*log.checkpoint(), before);
  ingest(monitor_a, batch(911, 200));  // 1,100 since the last checkpoint
  wait_for_checkpoint();
  EXPECT_EQ(*log.checkpoint(), seq_->last_position());
}

// A checkpoint asks the shards one after another over checkpoint_spread
// (capped at a quarter of the interval), so its snapshot writes trickle.
TEST_F(ingest_sequencer_test, a_checkpoint_spreads_over_its_spread_time) {
  storage::ingest_log log{db()};
  auto time_first_checkpoint = [&](std::chrono::milliseconds spread,
                                   std::chrono::milliseconds interval) {
    stop();
    settings_.checkpoint_spread = spread;
    settings_.checkpoint_interval = interval;
    start();
    auto t0 = std::chrono::steady_clock::now();
    ingest(monitor_a, {r(seq_->last_position() + 1, 1000, metric::heart_rate, 70)});
    for (int i = 0; i < 500 && *log.checkpoint() < seq_->last_position(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(*log.checkpoint(), seq_->last_position());
    return std::chrono::steady_clock::now() - t0;
  };
  // The first commit after a start is checkpointed at once; the last
  // shard is asked only when the spread has passed.
  EXPECT_GE(time_first_checkpoint(std::chrono::milliseconds(600), std::chrono::hours(1)),
            std::chrono::milliseconds(600));
  // Capped: a quarter of a 400 ms interval.
  EXPECT_LT(time_first_checkpoint(std::chrono::milliseconds(60'000), std::chrono::milliseconds(400)),
            std::chrono::milliseconds(2'000));
  settings_ = actors::ingest_settings{};
}

// SpO2 88 % crosses the medium threshold limit (<= 90) and scores 3 on NEWS2
// scale 1, so the NEWS2 low-medium band raises a low-priority alert too.
TEST_F(ingest_sequencer_test, low_spo2_raises_threshold_and_news2_alerts_once_then_resolves) {
  // Conditions must last their onset delay (data time): SpO2 <= 90 is
  // MEDIUM after 15 s; NEWS2 3 in one parameter is LOW after 30 s.
  // (The fall comes 200 s after the last reading, far from it: without a
  // recent level it waits for a second, consistent reading, then both count.)
  ingest(monitor_a, {r(1, 1000, metric::spo2, 97)});
  ingest(monitor_a, {r(2, 200000, metric::spo2, 88)});
  ingest(monitor_a, {r(3, 208000, metric::spo2, 88)});  // too short: nothing yet
  EXPECT_TRUE(alerts("h1").empty());
  ingest(monitor_a, {r(4, 215000, metric::spo2, 87)});  // threshold alert
  ingest(monitor_a, {r(5, 238000, metric::spo2, 87)});  // NEWS2 alert (30 s after 208 s)
  ingest(monitor_a, {r(6, 239000, metric::spo2, 88)});  // same conditions: no new alerts
  auto active = alerts("h1");
  ASSERT_EQ(active.size(), 2u);
  auto threshold = active[0].kind == models::alert_kind::threshold ? active[0] : active[1];
  auto news2 = active[0].kind == models::alert_kind::news2 ? active[0] : active[1];
  EXPECT_EQ(threshold.subject, metric::spo2);
  EXPECT_EQ(threshold.level, models::priority::medium);
  EXPECT_EQ(threshold.state, alert_state::active);
  EXPECT_EQ(threshold.patient, patient_a);
  EXPECT_EQ(threshold.ward, "ICU-1");
  EXPECT_EQ(threshold.raise_time_ms, 215000);
  EXPECT_EQ(threshold.message, "spo2 low: 87 %");
  EXPECT_EQ(threshold.device, monitor_a);
  EXPECT_EQ(news2.kind, models::alert_kind::news2);
  EXPECT_EQ(news2.level, models::priority::low);
  EXPECT_NE(threshold.name, news2.name);
  // The sudden recovery is confirmed by its third reading, 45 s on; then it
  // counts from its start (240 s): the threshold's 30 s hold has passed and
  // it clears with the confirming reading, NEWS2 (scored at frames) 60 s
  // after it.
  ingest(monitor_a, {r(7, 240000, metric::spo2, 96)});
  ingest(monitor_a, {r(8, 285000, metric::spo2, 96)});
  ingest(monitor_a, {r(9, 313000, metric::spo2, 96)});  // confirmed
  ingest(monitor_a, {r(10, 373000, metric::spo2, 96)});
  // Alert changes are messages from the twin to the hub: let them arrive.
  std::vector<alert_record> all;
  for (int i = 0; i < 200; ++i) {
    all = alerts("h1");
    if (all.size() == 2 && all[0].state == alert_state::resolved &&
        all[1].state == alert_state::resolved)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(all.size(), 2u);
  for (auto& a : all) {
    EXPECT_EQ(a.state, alert_state::resolved);
    EXPECT_EQ(a.resolve_time_ms, a.kind == models::alert_kind::threshold ? 313000 : 373000);
  }
}

TEST_F(ingest_sequencer_test, escalation_updates_priority_and_message) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 135)});   // medium: >= 130 ...
  ingest(monitor_a, {r(2, 31000, metric::heart_rate, 135)});  // ... for 30 s
  ingest(monitor_a, {r(3, 32000, metric::heart_rate, 155)});  // high: >= 150 ...
  ingest(monitor_a, {r(4, 37000, metric::heart_rate, 155)});  // ... for 5 s
  // HR >= 131 also scores 3 on NEWS2, which raises its own alert: look at
  // the threshold alert.
  std::vector<alert_record> all;
  for (int i = 0; i < 200; ++i) {
    all.clear();
    for (auto& a : alerts("h1"))
      if (a.kind == models::alert_kind::threshold)
        all.push_back(a);
    if (all.size() == 1 && all[0].level == models::priority::high)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].level, models::priority::high);
  EXPECT_EQ(all[0].value, 155);
  EXPECT_EQ(all[0].message, "heart_rate high: 155 /min");
  EXPECT_EQ(all[0].raise_time_ms, 31000);
}

TEST_F(ingest_sequencer_test, series_is_persisted_in_chunks_and_open_tail) {
  stop();
  ctx_.settings.chunk_samples = 16;
  start();
  for (uint64_t s = 1; s <= 40; ++s)
    ingest(monitor_a, {r(s, static_cast<int64_t>(s) * 1000, metric::heart_rate, 60 + s)});
  caf::scoped_actor self{*sys_};
  series_cursor c;
  self->request(shards_[models::shard_of(patient_a, shards_count())], std::chrono::seconds(5),
                series_atom::value,
                series_query{patient_a, static_cast<uint8_t>(metric::heart_rate)})
      .receive([&](series_cursor& x) { c = std::move(x); },
               [&](caf::error& e) { FAIL() << to_string(e); });
  EXPECT_EQ(c.closed_chunks, 2u);
  EXPECT_EQ(c.open_samples.size(), 8u);
  std::vector<storage::sample> closed;
  storage::series_table series{db()};
  ASSERT_FALSE(series.read(patient_a, static_cast<uint8_t>(metric::heart_rate), 0, 1'000'000,
                           c.closed_chunks, closed));
  EXPECT_EQ(closed.size(), 32u);
}

TEST_F(ingest_sequencer_test, resolving_by_hand_restarts_the_condition_which_raises_again_if_present) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 160)});
  ingest(monitor_a, {r(2, 6000, metric::heart_rate, 160)});  // HIGH after 5 s
  auto first = [&] {
    for (auto& a : alerts("h1"))
      if (a.kind == models::alert_kind::threshold)
        return a;
    return alert_record{};
  }();
  ASSERT_FALSE(first.name.empty());
  alert_record resolved;
  {
    caf::scoped_actor self{*sys_};  // gone before restart(): the system waits for it
    self->request(shards_[models::shard_of(patient_a, shards_count())], std::chrono::seconds(5),
                  resolve_atom::value,
                  hand_resolution{patient_a, first.name, "dr-who", "probe on the wrong finger"})
        .receive([&](alert_record& a) { resolved = std::move(a); },
                 [&](caf::error& e) { FAIL() << to_string(e); });
  }
  EXPECT_EQ(resolved.state, alert_state::resolved);
  EXPECT_EQ(resolved.resolved_by, "dr-who");
  // Still 160: the condition starts its onset delay afresh...
  ingest(monitor_a, {r(3, 7000, metric::heart_rate, 160)});
  ingest(monitor_a, {r(4, 10000, metric::heart_rate, 160)});
  auto thresholds = [&] {
    std::vector<alert_record> out;
    for (auto& a : alerts("h1"))
      if (a.kind == models::alert_kind::threshold)
        out.push_back(a);
    return out;
  };
  EXPECT_EQ(thresholds().size(), 1u);
  // ... and raises a new alert once it has lasted 5 s again.
  ingest(monitor_a, {r(5, 12000, metric::heart_rate, 160)});
  std::vector<alert_record> now;
  for (int i = 0; i < 200 && (now = thresholds()).size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(now.size(), 2u);
  auto fresh = now[0].name == first.name ? now[1] : now[0];
  EXPECT_EQ(fresh.state, alert_state::active);
  EXPECT_EQ(fresh.raise_time_ms, 12000);
  // The reset is kept across a restart (it is not in the log): the twin
  // still tracks the new alert and resolves it once normal for 30 s.
  restart();
  ingest(monitor_a, {r(6, 13000, metric::heart_rate, 72)});  // sudden: confirmed after 45 s
  ingest(monitor_a, {r(7, 60000, metric::heart_rate, 72)});
  ingest(monitor_a, {r(8, 95000, metric::heart_rate, 72)});
  auto id = models::parse_alert_name(fresh.name);
  alert_record persisted;
  for (int i = 0; i < 200; ++i) {
    auto bytes = storage::alert_table{db()}.get(id->owner, id->id);
    ASSERT_TRUE(bytes && *bytes);
    ASSERT_TRUE(parse(**bytes, persisted));
    if (persisted.state == alert_state::resolved)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(persisted.state, alert_state::resolved);
  EXPECT_EQ(persisted.resolve_time_ms, 95000);
  EXPECT_TRUE(persisted.resolved_by.empty());
}

TEST_F(ingest_sequencer_test, clinician_input_is_logged_applied_in_order_and_replayed) {
  auto submit = [&](patient_input in) {
    std::promise<registry_result> p;
    auto f = p.get_future();
    seq_->submit(std::move(in), [&](registry_result&& r) { p.set_value(std::move(r)); });
    auto r = f.get();
    drain();
    return r;
  };
  patient_input unknown;
  unknown.patient = "tenants/h1/patients/nobody";
  unknown.recorded_by = "dr-who";
  EXPECT_EQ(submit(unknown).error, caf::make_error(ingest_errc::not_found, std::string{"patient"}));

  auto settings = std::make_shared<models::patient_settings>();
  settings->spo2_scale2 = true;
  settings->baseline_k = 5;
  patient_input in;
  in.patient = patient_a;
  in.recorded_by = "dr-who";
  in.settings = settings;
  in.observations.push_back(reading{0, 2000, 2, metric::consciousness});
  ASSERT_FALSE(submit(in).error);
  auto p = patient(patient_a);
  EXPECT_TRUE(p.settings.spo2_scale2);
  EXPECT_EQ(p.settings.baseline_k, 5);
  EXPECT_EQ(p.news2.part(models::news2_parameter::consciousness).score, 3);
  EXPECT_EQ(counters_.devices.load(), 0u);  // no device twin for the clinician

  // The same input replayed from the log (after the last checkpoint).
  stop();
  reopen();
  auto pos = *storage::ingest_log{db()}.last_position();
  {
    internal::LogRecord rec;
    rec.set_receive_time_ms(5000);
    auto* d = rec.add_devices();
    d->set_device("dr-house");
    d->set_patient(patient_a);
    d->set_clinician(true);
    d->mutable_settings()->set_baseline_k(7);
    d->add_sequence(0);
    d->add_time_ms(3000);
    d->add_metric(static_cast<uint32_t>(metric::consciousness));
    d->add_value(0);
    storage::write_batch wb{db()};
    storage::ingest_log::append(wb, pos + 1, rec.SerializeAsString());
    ASSERT_FALSE(db().write(wb, true));
  }
  start();
  p = patient(patient_a);
  EXPECT_EQ(p.settings.baseline_k, 7);
  EXPECT_FALSE(p.settings.spo2_scale2);  // replaced as a whole
  EXPECT_EQ(p.news2.part(models::news2_parameter::consciousness).score, 0);
  bool found = false;
  for (auto& v : p.vitals)
    found = found || (v.metric == metric::consciousness && v.source_device == "clinician/dr-house");
  EXPECT_TRUE(found);

  // Invalid settings in the log stop recovery with the position named.
  stop();
  reopen();
  pos = *storage::ingest_log{db()}.last_position();
  {
    internal::LogRecord rec;
    auto* d = rec.add_devices();
    d->set_device("dr-house");
    d->set_patient(patient_a);
    d->set_clinician(true);
    d->mutable_settings()->set_baseline_k(99);
    storage::write_batch wb{db()};
    storage::ingest_log::append(wb, pos + 1, rec.SerializeAsString());
    ASSERT_FALSE(db().write(wb, true));
  }
  ingest_flow flow;
  prometheus::Registry metrics;
  ingest_sequencer s{settings_, db(), {}, flow, metrics};
  auto err = s.recover();
  ASSERT_TRUE(err);
  EXPECT_NE(to_string(err).find(std::to_string(pos + 1)), std::string::npos) << to_string(err);
  EXPECT_NE(to_string(err).find("baseline_k"), std::string::npos) << to_string(err);
}

TEST_F(ingest_sequencer_test, an_unassigned_device_streaming_raises_one_alert_resolved_on_assignment) {
  const std::string loose = "tenants/h1/devices/loose";
  add_device(loose);
  ingest(loose, {r(1, 1000, metric::heart_rate, 70)});
  ingest(loose, {r(2, 2000, metric::heart_rate, 71)});  // no second alert
  auto unassigned = [&] {
    std::vector<alert_record> out;
    for (auto& a : alerts("h1"))
      if (a.kind == models::alert_kind::device_unassigned)
        out.push_back(a);
    return out;
  };
  std::vector<alert_record> found;
  for (int i = 0; i < 200 && (found = unassigned()).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].device, loose);
  EXPECT_TRUE(found[0].patient.empty());
  EXPECT_EQ(found[0].level, models::priority::medium);
  EXPECT_EQ(found[0].name.rfind(loose + "/alerts/unassigned-", 0), 0u) << found[0].name;
  EXPECT_EQ(found[0].state, alert_state::active);

  // Kept across a restart (the flag is in the device snapshot).
  restart();
  ingest(loose, {r(3, 3000, metric::heart_rate, 72)});
  EXPECT_EQ(unassigned().size(), 1u);

  auto a = registry(assign_device{loose, patient_a});
  ASSERT_FALSE(a.error);
  ingest(loose, {r(4, 4000, metric::heart_rate, 73)});
  for (int i = 0; i < 200; ++i) {
    found = unassigned();
    if (found.size() == 1 && found[0].state == alert_state::resolved)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].state, alert_state::resolved);
}

TEST_F(ingest_sequencer_test, a_silent_device_is_reported_offline_by_the_timer_and_battery_alarms) {
  stop();
  std::atomic<int64_t> clock{std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count()};
  auto real_now = clock.load();
  ctx_.clock = [&clock] { return clock.load(); };
  ctx_.settings.device_tick_ms = 20;
  start();
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 1000, metric::battery, 80)});
  auto of_kind = [&](models::alert_kind k) {
    std::vector<alert_record> out;
    for (auto& a : alerts("h1"))
      if (a.kind == k)
        out.push_back(a);
    return out;
  };
  auto await = [&](models::alert_kind k, auto pred) {
    std::vector<alert_record> out;
    for (int i = 0; i < 400; ++i) {
      out = of_kind(k);
      if (pred(out))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return out;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // ticks pass: still online
  EXPECT_TRUE(of_kind(models::alert_kind::device_offline).empty());

  // No reading arrives: after 60 s (node clock) the timer reports it.
  clock = real_now + 61'000;
  auto offline = await(models::alert_kind::device_offline,
                       [](auto& v) { return !v.empty(); });
  ASSERT_EQ(offline.size(), 1u);
  EXPECT_EQ(offline[0].device, monitor_a);
  EXPECT_EQ(offline[0].level, models::priority::medium);
  EXPECT_EQ(offline[0].patient, patient_a);

  // Data again: resolved.
  clock = real_now + 62'000;
  ingest(monitor_a, {r(3, 2000, metric::heart_rate, 70)});
  offline = await(models::alert_kind::device_offline, [](auto& v) {
    return v.size() == 1 && v[0].state == alert_state::resolved;
  });
  ASSERT_EQ(offline.size(), 1u);
  EXPECT_EQ(offline[0].state, alert_state::resolved);

  // Battery: LOW at 20 %, MEDIUM at 5 %, cleared above 25 % (hysteresis).
  ingest(monitor_a, {r(4, 3000, metric::battery, 15)});
  auto battery = await(models::alert_kind::battery_low, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(battery.size(), 1u);
  EXPECT_EQ(battery[0].level, models::priority::low);
  ingest(monitor_a, {r(5, 4000, metric::battery, 4)});
  battery = await(models::alert_kind::battery_low, [](auto& v) {
    return v.size() == 1 && v[0].level == models::priority::medium;
  });
  EXPECT_EQ(battery[0].level, models::priority::medium);
  ingest(monitor_a, {r(6, 5000, metric::battery, 90)});
  battery = await(models::alert_kind::battery_low, [](auto& v) {
    return v.size() == 1 && v[0].state == alert_state::resolved;
  });
  EXPECT_EQ(battery[0].state, alert_state::resolved);
  stop();
  ctx_.clock = nullptr;
}

// Erasure: the registry record goes, the device is detached, the twin's
// records are deleted; and a replay of log records still attributing
// readings to the patient (a crash before the checkpoint that truncates
// them) does not bring any of it back.
TEST_F(ingest_sequencer_test, an_erased_patient_stays_erased_across_a_log_replay) {
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 71)});
  auto erased = registry(erase_patient{patient_a});
  ASSERT_FALSE(erased.error) << to_string(erased.error);
  EXPECT_EQ(erased.patient.devices, std::vector<std::string>{monitor_a});
  EXPECT_EQ(registry(erase_patient{patient_a}).error, ingest_errc::not_found);
  storage::patient_record again;
  again.name = patient_a;
  again.ward = "ICU-1";
  EXPECT_EQ(registry(create_patient{again}).error, ingest_errc::failed_precondition);
  auto dev = storage::registry{db()}.get_device(monitor_a);
  ASSERT_TRUE(dev && *dev);
  EXPECT_EQ((*dev)->patient, "");

  auto snapshot_key = storage::key_codec::twin_key(models::shard_of(patient_a, shards_count()),
                                                   models::twin_kind::patient, patient_a);
  auto snapshot_gone = [&] {
    auto v = db().get(storage::column::twins, snapshot_key);
    return v && !*v;
  };
  EXPECT_TRUE(snapshot_gone());  // the call returns once the records are deleted

  stop();
  reopen();
  auto p = *storage::ingest_log{db()}.last_position();
  append_to_log(monitor_a, patient_a, 3, 3000, 72);
  start();
  EXPECT_EQ(seq_->last_position(), p + 1);
  drain();
  EXPECT_TRUE(snapshot_gone());
  caf::scoped_actor self{*sys_};
  bool refused = false;
  self->request(shards_[models::shard_of(patient_a, shards_count())], std::chrono::seconds(5),
                patient_view_atom::value, patient_a)
      .receive([&](patient_view&) {}, [&](caf::error& e) { refused = e == storage::errc::erased; });
  EXPECT_TRUE(refused);
  std::vector<storage::sample> out;
  EXPECT_FALSE(storage::series_table{db()}.read(patient_a, static_cast<uint8_t>(metric::heart_rate),
                                                0, 1'000'000, 100, out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(device(monitor_a).last_sequence, 3u);  // the device itself goes on
}

// Every reason the sequencer gives is counted under its own label; the
// highest (decommissioned) once indexed past the end of the counters.
TEST_F(ingest_sequencer_test, rejections_are_counted_by_reason) {
  add_device("tenants/h1/devices/old");
  ASSERT_FALSE(registry(decommission_device{"tenants/h1/devices/old"}).error);
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 72)});
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 72), r(2, 1000, metric::glucose, 90)});
  ingest("tenants/h1/devices/old", {r(1, 1000, metric::heart_rate, 72), r(2, 1000, metric::heart_rate, 72)});
  ingest("tenants/h1/devices/ghost", {r(1, 1000, metric::heart_rate, 72)});
  std::map<std::string, double> counted;
  for (auto& family : metrics_->Collect())
    if (family.name == "healthtwin_ingest_readings_rejected_total")
      for (auto& m : family.metric)
        counted[m.label.at(0).value] = m.counter.value;
  EXPECT_EQ(counted["duplicate"], 1);
  EXPECT_EQ(counted["metric_not_supported"], 1);
  EXPECT_EQ(counted["decommissioned"], 2);
  EXPECT_EQ(counted["unknown_device"], 1);
  EXPECT_EQ(counted["unavailable"], 0);
  EXPECT_EQ(counted.size(), rejection_reasons - 1);
}

// -- sequence resets (docs/api.md, "Sequence numbers") ---------------------------

// A device that sent a number far ahead (or whose counter restarted) is
// refused OUTSIDE_WINDOW for every lower number until an operator resets it.
TEST_F(ingest_sequencer_test, a_reset_lets_a_wedged_device_start_its_numbers_afresh) {
  const uint64_t far = uint64_t{1} << 40;
  ASSERT_EQ(ingest(monitor_a, {r(far, 1000, metric::heart_rate, 70)}).accepted, 1u);
  auto wedged = ingest(monitor_a, {r(1, 2000, metric::heart_rate, 71)});
  ASSERT_EQ(wedged.rejections.size(), 1u);
  EXPECT_EQ(wedged.rejections[0].reason, rejection_reason::outside_window);
  auto reset = registry(reset_device_sequence{monitor_a});
  ASSERT_FALSE(reset.error) << to_string(reset.error);
  EXPECT_EQ(reset.device.name, monitor_a);
  drain();
  EXPECT_EQ(device(monitor_a).last_sequence, 0u);
  EXPECT_EQ(ingest(monitor_a, {r(1, 2000, metric::heart_rate, 71), r(2, 3000, metric::heart_rate, 72)})
                .accepted,
            2u);
  EXPECT_EQ(patient(patient_a).readings_applied, 3u);
  EXPECT_EQ(device(monitor_a).last_sequence, 2u);
  restart();  // the reset window was stored with the checkpoint
  auto dup = ingest(monitor_a, {r(2, 3000, metric::heart_rate, 72), r(3, 4000, metric::heart_rate, 73)});
  EXPECT_EQ(dup.accepted, 1u);
  ASSERT_EQ(dup.rejections.size(), 1u);
  EXPECT_EQ(dup.rejections[0].reason, rejection_reason::duplicate);
  EXPECT_EQ(registry(reset_device_sequence{"tenants/h1/devices/ghost"}).error, ingest_errc::not_found);
}

// A crash after the reset: the replay meets the reset in the log and
// forgets the stored window (older than it) and what it replayed before.
TEST_F(ingest_sequencer_test, a_replayed_reset_forgets_the_stored_window_and_what_came_before) {
  const uint64_t far = uint64_t{1} << 40;
  ASSERT_EQ(ingest(monitor_a, {r(far, 1000, metric::heart_rate, 70)}).accepted, 1u);
  stop();  // the stored window's highest is 2^40
  reopen();
  append_to_log(monitor_a, patient_a, far + 1, 1500, 70);
  {  // the reset, then numbers from 1
    storage::ingest_log log{db()};
    auto p = *log.last_position();
    internal::LogRecord rec;
    auto* d = rec.add_devices();
    d->set_device(monitor_a);
    d->set_patient(patient_a);
    d->set_sequence_reset(true);
    storage::write_batch wb{db()};
    storage::ingest_log::append(wb, p + 1, rec.SerializeAsString());
    ASSERT_FALSE(db().write(wb, true));
  }
  append_to_log(monitor_a, patient_a, 1, 2000, 71);
  append_to_log(monitor_a, patient_a, 2, 3000, 72);
  start();
  auto res = ingest(monitor_a, {r(2, 3000, metric::heart_rate, 72), r(3, 4000, metric::heart_rate, 73),
                                r(far, 5000, metric::heart_rate, 74)});
  EXPECT_EQ(res.accepted, 2u);  // 3, and 2^40 (forgotten by the reset)
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::duplicate);
  EXPECT_EQ(res.rejections[0].index, 0u);
  EXPECT_EQ(patient(patient_a).readings_applied, 6u);
  restart();  // the checkpoint wrote the replayed window, not merged with the old one
  auto again = ingest(monitor_a, {r(4, 6000, metric::heart_rate, 75)});
  EXPECT_EQ(again.accepted, 0u);  // below 2^40 - 256: the window moved on with 2^40
  EXPECT_EQ(ingest(monitor_a, {r(far + 2, 6000, metric::heart_rate, 75)}).accepted, 1u);
}

// -- cluster: patient parts (docs/adr/0013) ---------------------------------------

namespace {

std::vector<ingest_group> part_of(const std::string& patient, const std::string& device,
                                  std::vector<ingest_reading> readings) {
  ingest_group g;
  g.device = device;
  g.patient = patient;
  uint32_t i = 0;
  for (auto& x : readings)
    x.index = i++;
  g.readings = std::move(readings);
  std::vector<ingest_group> out;
  out.push_back(std::move(g));
  return out;
}

}  // namespace

class patient_parts_test : public ingest_sequencer_test {
protected:
  ingest_result apply_parts(std::vector<ingest_group> groups) {
    size_t n = 0;
    for (auto& g : groups)
      n += g.readings.size();
    std::promise<ingest_result> p;
    auto f = p.get_future();
    seq_->submit_patient_parts(std::move(groups), n, [&](ingest_result&& x) { p.set_value(std::move(x)); });
    auto res = f.get();
    drain();
    return res;
  }
};

// The device's owner: readings of a device whose patient another member
// owns are committed for the device and handed back as the patient part,
// duplicates included (their earlier carrying may have failed); the patient
// twin here is never fed.
TEST_F(patient_parts_test, a_device_of_another_members_patient_returns_its_patient_part) {
  const std::string far_patient = "tenants/h1/patients/far";
  auto far_shard = models::shard_of(far_patient, shards_count());
  ASSERT_NE(far_shard, models::shard_of(patient_a, shards_count()));
  settings_.owns_shard = [far_shard](uint32_t s) { return s != far_shard; };
  restart();
  add_device("tenants/h1/devices/mon-far");
  ASSERT_FALSE(registry(assign_device{"tenants/h1/devices/mon-far", far_patient, true}).error);
  auto res = ingest("tenants/h1/devices/mon-far",
                    {r(1, 1000, metric::heart_rate, 72), r(2, 2000, metric::spo2, 97)});
  EXPECT_EQ(res.accepted, 2u);
  ASSERT_EQ(res.patient_parts.size(), 1u);
  auto& part = res.patient_parts[0];
  EXPECT_EQ(part.patient, far_patient);
  EXPECT_EQ(part.device, "tenants/h1/devices/mon-far");
  ASSERT_EQ(part.readings.size(), 2u);
  EXPECT_EQ(part.indexes, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(part.fresh, (std::vector<bool>{true, true}));
  EXPECT_EQ(device("tenants/h1/devices/mon-far").readings_accepted, 2u);

  auto again = ingest("tenants/h1/devices/mon-far",
                      {r(2, 2000, metric::spo2, 97), r(3, 3000, metric::heart_rate, 73)});
  EXPECT_EQ(again.accepted, 1u);
  ASSERT_EQ(again.patient_parts.size(), 1u);
  EXPECT_EQ(again.patient_parts[0].fresh, (std::vector<bool>{false, true}));
  ASSERT_EQ(again.rejections.size(), 1u);
  EXPECT_EQ(again.rejections[0].reason, rejection_reason::duplicate);
  // A device whose patient is here hands nothing back.
  EXPECT_TRUE(ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)}).patient_parts.empty());
}

// The patient's owner: a part is applied to the patient twin once, by a
// window per patient and device that survives a restart and a log replay.
TEST_F(patient_parts_test, patient_parts_are_applied_once_across_restarts_and_replay) {
  const std::string far_device = "tenants/h1/devices/elsewhere";
  auto res = apply_parts(part_of(patient_a, far_device, {r(1, 1000, metric::heart_rate, 72),
                                                          r(2, 2000, metric::heart_rate, 74)}));
  ASSERT_FALSE(res.error);
  EXPECT_EQ(res.accepted, 2u);
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
  EXPECT_EQ(patient(patient_a).vitals[0].source_device, far_device);
  auto dup = apply_parts(part_of(patient_a, far_device, {r(2, 2000, metric::heart_rate, 74)}));
  EXPECT_EQ(dup.accepted, 0u);
  ASSERT_EQ(dup.rejections.size(), 1u);
  EXPECT_EQ(dup.rejections[0].reason, rejection_reason::duplicate);
  // The same sequence from a local device is its own window.
  EXPECT_EQ(ingest(monitor_a, {r(2, 2500, metric::heart_rate, 75)}).accepted, 1u);

  restart();
  EXPECT_EQ(patient(patient_a).readings_applied, 3u);
  EXPECT_EQ(apply_parts(part_of(patient_a, far_device, {r(1, 1000, metric::heart_rate, 72)})).accepted, 0u);

  // A part in the log tail after the checkpoint is replayed into the twin
  // and its window.
  stop();
  reopen();
  append_to_log(far_device, patient_a, 3, 3000, 76, true);
  start();
  EXPECT_EQ(patient(patient_a).readings_applied, 4u);
  EXPECT_EQ(apply_parts(part_of(patient_a, far_device, {r(3, 3000, metric::heart_rate, 76)})).accepted, 0u);
  // Nothing became a device twin of the device registered elsewhere.
  EXPECT_EQ(device(far_device).readings_accepted, 0u);
}

// After the device's owner reset the device's numbers, its parts arrive
// far below the part's window: new ones are taken, resent ones are not.
TEST_F(patient_parts_test, a_part_the_devices_owner_found_new_is_taken_below_the_parts_window) {
  const std::string far_device = "tenants/h1/devices/elsewhere";
  ASSERT_EQ(apply_parts(part_of(patient_a, far_device, {r(uint64_t{1} << 40, 1000, metric::heart_rate, 72)}))
                .accepted,
            1u);
  auto fresh = r(1, 2000, metric::heart_rate, 73);
  auto resent = r(2, 3000, metric::heart_rate, 74);
  resent.resent = true;
  auto res = apply_parts(part_of(patient_a, far_device, {fresh, resent}));
  EXPECT_EQ(res.accepted, 1u);
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::outside_window);
  EXPECT_EQ(res.rejections[0].index, 1u);
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
}

TEST_F(patient_parts_test, a_part_for_a_patient_not_registered_here_is_rejected) {
  auto res = apply_parts(part_of("tenants/h1/patients/nobody", "tenants/h1/devices/x",
                                 {r(1, 1000, metric::heart_rate, 72)}));
  EXPECT_EQ(res.accepted, 0u);
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::unknown_device);
  EXPECT_EQ(res.rejections[0].description, "no such patient");
}

// The patient's owner keeps its device list: a link is idempotent, an
// unknown patient not_found.
TEST_F(patient_parts_test, device_links_change_the_patients_device_list) {
  const std::string far_device = "tenants/h1/devices/elsewhere";
  auto linked = registry(link_device{patient_a, far_device, true});
  ASSERT_FALSE(linked.error);
  EXPECT_EQ(linked.patient.devices, (std::vector<std::string>{monitor_a, far_device}));
  EXPECT_EQ(registry(link_device{patient_a, far_device, true}).patient.devices.size(), 2u);
  EXPECT_EQ(patient(patient_a).devices.size(), 2u);
  auto unlinked = registry(link_device{patient_a, far_device, false});
  EXPECT_EQ(unlinked.patient.devices, std::vector<std::string>{monitor_a});
  EXPECT_TRUE(registry(link_device{"tenants/h1/patients/nobody", far_device, true}).error);
  EXPECT_TRUE(registry(link_device{patient_a, "tenants/h2/devices/x", true}).error);
}

// The patient's owner erases the windows of the patient's parts with the
// patient: their keys name the patient.
TEST_F(patient_parts_test, erasing_a_patient_deletes_the_windows_of_its_parts) {
  const std::string far_device = "tenants/h1/devices/elsewhere";
  ASSERT_EQ(apply_parts(part_of(patient_a, far_device, {r(1, 1000, metric::heart_rate, 72)})).accepted, 1u);
  restart();  // the checkpoint writes the window
  auto window = storage::key_codec::window_key(models::shard_of(patient_a, shards_count()),
                                               storage::key_codec::part_window_name(patient_a, far_device));
  auto stored = db().get(storage::column::twins, window);
  ASSERT_TRUE(stored && *stored) << "the part's window should have been checkpointed";
  ASSERT_FALSE(registry(erase_patient{patient_a}).error);
  restart();  // the purge runs after the checkpoint past the erasure
  stored = db().get(storage::column::twins, window);
  ASSERT_TRUE(stored);
  EXPECT_FALSE(*stored);
}

namespace {

size_t owed_purges(storage::store& db) {
  auto n = storage::purges_owed(db);
  return n ? *n : 99;
}

}  // namespace

// A device's owner, while another member erases the device's patient:
// detaches the devices still attached to that patient (only those), and
// owes a purge of the patient's name from its files until it ran.
TEST_F(patient_parts_test, releasing_devices_detaches_those_of_the_erased_patient_and_purges) {
  const std::string far_patient = "tenants/h1/patients/far";
  const std::string other_patient = "tenants/h1/patients/other";
  const std::string far_device = "tenants/h1/devices/mon-far";
  const std::string other_device = "tenants/h1/devices/mon-other";
  auto owed = [&] { return owed_purges(db()); };
  add_device(far_device);
  add_device(other_device);
  ASSERT_FALSE(registry(assign_device{far_device, far_patient, true}).error);
  ASSERT_FALSE(registry(assign_device{other_device, other_patient, true}).error);
  ASSERT_EQ(owed(), 0u);

  ASSERT_FALSE(registry(release_devices{far_patient, {far_device, other_device}}).error);
  storage::registry reg{db()};
  EXPECT_EQ((*reg.get_device(far_device))->patient, "");
  EXPECT_EQ((*reg.get_device(other_device))->patient, other_patient);  // not the erased one's
  EXPECT_EQ(owed(), 1u);
  // Released again (a retried erasure): nothing changes.
  ASSERT_FALSE(registry(release_devices{far_patient, {far_device}}).error);
  EXPECT_EQ((*reg.get_device(far_device))->patient, "");
  // The device goes on, for nobody.
  EXPECT_EQ(ingest(far_device, {r(1, 1000, metric::heart_rate, 72)}).accepted, 1u);
  restart();  // the stop's checkpoint hands the purge over and finishes it
  EXPECT_EQ(owed(), 0u);
}

// -- cluster: shard hand-off steps (docs/adr/0014) ---------------------------------

class shard_handoff_test : public ingest_sequencer_test {
protected:
  void SetUp() override {
    owned_ = std::make_unique<std::atomic<bool>[]>(shards_count());
    for (uint32_t s = 0; s < shards_count(); ++s)
      owned_[s] = true;
    settings_.owns_shard = [this](uint32_t s) { return owned_[s].load(); };
    ingest_sequencer_test::SetUp();
    device_shard_ = models::shard_of(monitor_a, shards_count());
    patient_shard_ = models::shard_of(patient_a, shards_count());
  }

  caf::error step(shard_step::kind what, std::vector<uint32_t> shards) {
    std::promise<caf::error> p;
    auto f = p.get_future();
    seq_->submit(shard_step{what, std::move(shards)}, [&](caf::error e) { p.set_value(std::move(e)); });
    if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready)
      return caf::make_error(caf::sec::request_timeout);
    auto err = f.get();
    drain();
    return err;
  }

  // What the old owner does: fence, checkpoint, give away, forget.
  void hand_away(uint32_t shard) {
    ASSERT_FALSE(step(shard_step::kind::fence, {shard}));
    ASSERT_FALSE(step(shard_step::kind::checkpoint, {shard}));
    owned_[shard] = false;
    ASSERT_FALSE(step(shard_step::kind::release, {shard}));
  }

  // What the new owner does: forget stale state, then own it.
  void take_back(uint32_t shard) {
    ASSERT_FALSE(step(shard_step::kind::adopt, {shard}));
    owned_[shard] = true;
  }

  std::unique_ptr<std::atomic<bool>[]> owned_;
  uint32_t device_shard_ = 0, patient_shard_ = 0;
};

TEST_F(shard_handoff_test, a_fenced_shard_refuses_readings_and_changes_until_the_fence_is_lifted) {
  ASSERT_EQ(ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)}).accepted, 1u);
  ASSERT_FALSE(step(shard_step::kind::fence, {device_shard_}));
  auto res = ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71)});
  EXPECT_EQ(res.accepted, 0u);
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::unavailable);
  EXPECT_NE(res.rejections[0].description.find("being handed to another member"), std::string::npos)
      << res.rejections[0].description;
  auto changed = registry(update_desired_config{monitor_a, {}, std::nullopt});
  EXPECT_EQ(changed.error, ingest_errc::moving);
  // The readings of a device whose patient's shard is fenced wait too.
  if (patient_shard_ != device_shard_) {
    ASSERT_FALSE(step(shard_step::kind::unfence, {device_shard_}));
    ASSERT_FALSE(step(shard_step::kind::fence, {patient_shard_}));
    res = ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71)});
    ASSERT_EQ(res.rejections.size(), 1u);
    EXPECT_EQ(res.rejections[0].reason, rejection_reason::unavailable);
    storage::patient_record fields;
    fields.name = patient_a;
    EXPECT_EQ(registry(update_patient{fields, {"ward"}, 0}).error, ingest_errc::moving);
    ASSERT_FALSE(step(shard_step::kind::unfence, {patient_shard_}));
  } else {
    ASSERT_FALSE(step(shard_step::kind::unfence, {device_shard_}));
  }
  // Refused readings were not admitted: the same sequence number is taken now.
  EXPECT_EQ(ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71)}).accepted, 1u);
  EXPECT_EQ(device(monitor_a).readings_accepted, 2u);
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
}

// A hand-off's checkpoint writes the snapshots and windows of its shards
// only, at once, and leaves the log's checkpoint where it is.
TEST_F(shard_handoff_test, a_checkpoint_step_stores_what_its_shards_committed_before_it) {
  settings_.checkpoint_interval = std::chrono::hours(1);
  settings_.checkpoint_spread = std::chrono::milliseconds(0);
  restart();
  const std::string other = "tenants/h1/devices/elsewhere";
  ASSERT_NE(models::shard_of(other, shards_count()), device_shard_);
  add_device(other);
  // The node's first checkpoint follows its first commit; the next is an hour away.
  ASSERT_EQ(ingest(other, {r(1, 1000, metric::heart_rate, 70)}).accepted, 1u);
  storage::ingest_log log{db()};
  for (int i = 0; i < 200 && *log.checkpoint() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto checkpoint = *log.checkpoint();
  ASSERT_GT(checkpoint, 0u);
  ASSERT_EQ(ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 71)})
                .accepted,
            2u);
  ASSERT_EQ(ingest(other, {r(2, 2000, metric::heart_rate, 71)}).accepted, 1u);
  ASSERT_FALSE(step(shard_step::kind::checkpoint, {device_shard_}));
  EXPECT_EQ(*log.checkpoint(), checkpoint);
  storage::twin_table twins{db(), storage::column::twins};
  auto snapshot = [&](const std::string& device) {
    internal::DeviceSnapshot d;
    auto bytes = twins.get(models::twin_kind::device, device);
    EXPECT_TRUE(bytes);
    if (bytes && *bytes) {
      EXPECT_TRUE(d.ParseFromString(**bytes));
    }
    return d;
  };
  EXPECT_EQ(snapshot(monitor_a).readings_accepted(), 2u);
  EXPECT_EQ(snapshot(other).readings_accepted(), 1u);  // another shard: as the node's checkpoint left it
  auto window = db().get(storage::column::twins, storage::key_codec::window_key(device_shard_, monitor_a));
  ASSERT_TRUE(window && *window);
  internal::SequenceWindowState w;
  ASSERT_TRUE(w.ParseFromString(**window));
  EXPECT_EQ(w.highest(), 2u);
}

TEST_F(shard_handoff_test, a_shard_handed_away_is_refused_and_taken_back_from_its_stored_state) {
  ASSERT_EQ(ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 71)})
                .accepted,
            2u);
  hand_away(device_shard_);
  auto res = ingest(monitor_a, {r(3, 3000, metric::heart_rate, 72)});
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::unavailable);
  EXPECT_NE(res.rejections[0].description.find("belongs to another member"), std::string::npos);
  EXPECT_EQ(registry(update_desired_config{monitor_a, {}, std::nullopt}).error, ingest_errc::moving);
  // Taken back (the store still holds what the checkpoint wrote): its
  // window and twin come from there.
  take_back(device_shard_);
  res = ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71), r(3, 3000, metric::heart_rate, 72)});
  EXPECT_EQ(res.accepted, 1u);
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::duplicate);
  EXPECT_EQ(device(monitor_a).readings_accepted, 3u);
}

// A reading committed for its device while its patient's shard was another
// member's, whose patient part did not arrive there: once the patient is
// this node's again, the resend (a DUPLICATE for the device) reaches the
// patient twin, which applies each sequence number once.
TEST_F(shard_handoff_test, a_duplicate_reaches_a_local_patient_twin_which_applies_it_once) {
  if (patient_shard_ == device_shard_)
    GTEST_SKIP() << "the device and its patient share a shard here";
  ASSERT_EQ(ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)}).accepted, 1u);
  hand_away(patient_shard_);
  auto res = ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71)});
  EXPECT_EQ(res.accepted, 1u);
  ASSERT_EQ(res.patient_parts.size(), 1u);  // for the patient's owner, which did not take it
  take_back(patient_shard_);
  EXPECT_EQ(patient(patient_a).readings_applied, 1u);
  res = ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71)});
  ASSERT_EQ(res.rejections.size(), 1u);
  EXPECT_EQ(res.rejections[0].reason, rejection_reason::duplicate);
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
  // Again, and a reading the patient has: applied once all the same.
  ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70), r(2, 2000, metric::heart_rate, 71)});
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
  restart();
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
  ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71)});
  EXPECT_EQ(patient(patient_a).readings_applied, 2u);
  EXPECT_EQ(ingest(monitor_a, {r(3, 3000, metric::heart_rate, 72)}).accepted, 1u);
  EXPECT_EQ(patient(patient_a).readings_applied, 3u);
}

TEST_F(shard_handoff_test, a_replay_skips_the_records_of_shards_handed_over_since) {
  ASSERT_EQ(ingest(monitor_a, {r(1, 1000, metric::heart_rate, 70)}).accepted, 1u);
  stop();
  reopen();
  append_to_log(monitor_a, patient_a, 2, 2000, 71);
  owned_[device_shard_] = false;
  owned_[patient_shard_] = false;
  start();
  owned_[device_shard_] = true;  // as a new owner would find it: the record left out
  owned_[patient_shard_] = true;
  EXPECT_EQ(device(monitor_a).readings_accepted, 1u);
  EXPECT_EQ(patient(patient_a).readings_applied, 1u);
  // The window was not rebuilt from it either.
  EXPECT_EQ(ingest(monitor_a, {r(2, 2000, metric::heart_rate, 71)}).accepted, 1u);
}
