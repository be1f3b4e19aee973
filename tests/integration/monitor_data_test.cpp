// Bedside-monitor numerics through a real node (issue 25): frames of
// readings with one timestamp, 0 for "no signal", reading quality flags.

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

constexpr int64_t minute = 60'000;

struct sample {
  v1::Metric metric;
  double value;
  v1::ReadingQuality quality = v1::READING_QUALITY_UNSPECIFIED;
};

class monitor_data_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
  }
  void TearDown() override { EXPECT_EQ(node_->stop(), 0) << node_->log(); }

  void admit(const std::string& id) {
    ASSERT_TRUE(client_->create_patient("h1", id, "ICU-1").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon-" + id, v1::DEVICE_TYPE_BEDSIDE_MONITOR,
                                       "tenants/h1/patients/" + id)
                    .ok());
  }

  // One frame of a monitor: every sample at time t, in the order given.
  void frame(const std::string& id, int64_t t, const std::vector<sample>& samples) {
    v1::IngestRequest req;
    auto* d = req.add_devices();
    d->set_device("tenants/h1/devices/mon-" + id);
    bool flagged = std::any_of(samples.begin(), samples.end(),
                               [](const sample& s) { return s.quality != v1::READING_QUALITY_UNSPECIFIED; });
    for (auto& s : samples) {
      d->add_sequence(++sequence_[id]);
      d->add_time_ms(t);
      d->add_metric(s.metric);
      d->add_value(s.value);
      if (flagged)
        d->add_quality(s.quality);
    }
    v1::IngestResponse resp;
    auto st = client_->send(req, resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(resp.rejections_size(), 0) << resp.rejections(0).ShortDebugString();
  }

  std::vector<v1::Alert> alerts_of(const std::string& id) {
    std::vector<v1::Alert> out;
    for (auto& a : client_->list_alerts("tenants/h1", true))
      if (a.patient() == "tenants/h1/patients/" + id)
        out.push_back(a);
    return out;
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
  std::map<std::string, uint64_t> sequence_;
};

}  // namespace

// A monitor without an arterial line sends SBP and DBP 0 with every frame:
// that is no signal, not a pressure of 0 (it raised a HIGH alert for most of
// a day), and none of it is charted.
TEST_F(monitor_data_test, zeros_are_no_signal_stored_as_such_and_never_charted) {
  admit("p1");
  auto t0 = now_ms() - 90 * minute;
  for (int k = 0; k < 60; ++k)
    frame("p1", t0 + k * minute,
          {{v1::METRIC_HEART_RATE, 70.0 + k % 4}, {v1::METRIC_SPO2, 97.0 - k % 2},
           {v1::METRIC_RESPIRATION_RATE, 15.0 + k % 3},
           {v1::METRIC_SYSTOLIC_BP, 0}, {v1::METRIC_DIASTOLIC_BP, 0}});
  auto twin = client_->patient_twin("tenants/h1/patients/p1");
  for (auto& v : twin.vitals())
    EXPECT_NE(v.metric(), v1::METRIC_SYSTOLIC_BP) << v.ShortDebugString();
  for (auto& a : alerts_of("p1"))
    ADD_FAILURE() << a.ShortDebugString();
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::GetVitalsHistoryRequest req;
  req.set_patient("tenants/h1/patients/p1");
  req.set_metric(v1::METRIC_SYSTOLIC_BP);
  req.set_start_time_ms(t0);
  req.set_end_time_ms(t0 + 61 * minute);
  v1::VitalsHistory h;
  ASSERT_TRUE(client_->twins->GetVitalsHistory(&ctx, req, &h).ok());
  EXPECT_EQ(h.value_size(), 0);
  // A signal that was there and is lost is a technical alarm, never a clinical one.
  auto t1 = t0 + 60 * minute;
  for (int k = 0; k < 4; ++k)
    frame("p1", t1 + k * minute,
          {{v1::METRIC_HEART_RATE, 0, v1::READING_QUALITY_NO_SIGNAL}, {v1::METRIC_SPO2, 97, v1::READING_QUALITY_VALID},
           {v1::METRIC_RESPIRATION_RATE, 15, v1::READING_QUALITY_VALID}});
  std::vector<v1::Alert> found;
  for (int i = 0; i < 100 && found.empty(); ++i) {
    found = alerts_of("p1");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].kind(), v1::ALERT_KIND_SIGNAL_QUALITY);
  EXPECT_EQ(found[0].priority(), v1::PRIORITY_MEDIUM);
  EXPECT_NE(found[0].message().find("no heart_rate signal"), std::string::npos) << found[0].message();
}

// NEWS2 is scored once per frame: the same minute frames sent in different
// orders raise the same NEWS2 alerts.
TEST_F(monitor_data_test, the_order_of_readings_in_a_frame_changes_no_alert) {
  std::mt19937 rng{5};
  auto t0 = now_ms() - 100 * minute;
  for (auto id : {"ordered", "shuffled"}) {
    admit(id);
    ASSERT_TRUE([&] {
      grpc::ClientContext ctx;
      api_client::deadline(ctx);
      v1::RecordObservationsRequest r;
      r.set_patient("tenants/h1/patients/" + std::string{id});
      r.set_consciousness(0);
      r.set_oxygen_flow(0);
      r.mutable_observe_time()->set_seconds(t0 / 1000);
      r.set_recorded_by("nurse-1");
      v1::RecordObservationsResponse out;
      return client_->clinical->RecordObservations(&ctx, r, &out).ok();
    }());
  }
  for (int k = 0; k < 90; ++k) {
    bool sick = (k / 10) % 2 == 1;  // ten minutes each: NEWS2 0, then 6 (medium)
    std::vector<sample> f{{v1::METRIC_HEART_RATE, sick ? 112.0 : 72.0},
                          {v1::METRIC_RESPIRATION_RATE, sick ? 22.0 : 15.0},
                          {v1::METRIC_SPO2, sick ? 95.0 : 97.0},
                          {v1::METRIC_TEMPERATURE, sick ? 38.4 : 37.0},
                          {v1::METRIC_SYSTOLIC_BP, 125}};
    frame("ordered", t0 + k * minute, f);
    std::shuffle(f.begin(), f.end(), rng);
    frame("shuffled", t0 + k * minute, f);
  }
  auto news2 = [&](const std::string& id) {
    std::vector<std::pair<int64_t, v1::Priority>> out;
    for (auto& a : alerts_of(id))
      if (a.kind() == v1::ALERT_KIND_NEWS2)
        out.emplace_back(a.raise_time_ms(), a.priority());
    std::sort(out.begin(), out.end());
    return out;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto a = news2("ordered"), b = news2("shuffled");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
}

TEST_F(monitor_data_test, a_quality_array_of_another_length_or_value_is_refused_whole) {
  admit("p1");
  v1::IngestRequest req;
  auto* d = req.add_devices();
  d->set_device("tenants/h1/devices/mon-p1");
  d->add_sequence(1);
  d->add_time_ms(now_ms());
  d->add_metric(v1::METRIC_HEART_RATE);
  d->add_value(70);
  d->add_quality(v1::READING_QUALITY_VALID);
  d->add_quality(v1::READING_QUALITY_VALID);
  v1::IngestResponse resp;
  EXPECT_EQ(client_->send(req, resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  d->clear_quality();
  d->add_quality(static_cast<v1::ReadingQuality>(9));
  EXPECT_EQ(client_->send(req, resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// A monitor whose clock runs 3 minutes behind the node's: its readings are
// stored at their device times, and once it has streamed live for 45 s a
// LOW technical alarm names it (issue 22). Takes about 50 s of real time.
TEST_F(monitor_data_test, a_device_clock_three_minutes_behind_raises_a_low_clock_drift_alarm) {
  admit("p1");
  for (int k = 0; k < 4; ++k) {
    if (k > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(15'500));
    frame("p1", now_ms() - 180'000, {{v1::METRIC_HEART_RATE, 72}, {v1::METRIC_SPO2, 97}});
  }
  std::vector<v1::Alert> drift;
  for (int attempt = 0; attempt < 50 && drift.empty(); ++attempt) {
    for (auto& a : alerts_of("p1"))
      if (a.kind() == v1::ALERT_KIND_CLOCK_DRIFT)
        drift.push_back(a);
    if (drift.empty())
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(drift.size(), 1u);
  EXPECT_EQ(drift[0].priority(), v1::PRIORITY_LOW);
  EXPECT_NE(drift[0].message().find("behind"), std::string::npos) << drift[0].ShortDebugString();
  EXPECT_NE(drift[0].message().find("mon-p1"), std::string::npos) << drift[0].ShortDebugString();
}
