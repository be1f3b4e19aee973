// Clinician settings and observations through the real gRPC API: per-patient
// alarm limits change what alerts, charted ACVPU counts in NEWS2, both are
// validated field by field and survive a restart.

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

const std::string copd = "tenants/h1/patients/copd";
const std::string other = "tenants/h1/patients/other";
const std::string copd_monitor = "tenants/h1/devices/mon-copd";
const std::string other_monitor = "tenants/h1/devices/mon-other";

class clinical_test : public ::testing::Test {
protected:
  void SetUp() override {
    start();
    ASSERT_TRUE(client_->create_patient("h1", "copd", "ICU-3").ok());
    ASSERT_TRUE(client_->create_patient("h1", "other", "ICU-3").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon-copd", v1::DEVICE_TYPE_BEDSIDE_MONITOR, copd).ok());
    ASSERT_TRUE(client_->create_device("h1", "mon-other", v1::DEVICE_TYPE_BEDSIDE_MONITOR, other).ok());
  }

  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), 0) << node_->log();
    }
  }

  void start() {
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
  }

  void restart() {
    ASSERT_EQ(node_->stop(), 0) << node_->log();
    start();
  }

  grpc::Status update(const std::string& patient, const v1::PatientSettings& s,
                      v1::PatientSettings* out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdatePatientSettingsRequest req;
    req.set_patient(patient);
    *req.mutable_settings() = s;
    req.set_updated_by("dr-who");
    return client_->clinical->UpdatePatientSettings(&ctx, req, out);
  }

  v1::PatientSettings get(const std::string& patient) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::GetPatientSettingsRequest req;
    req.set_patient(patient);
    v1::PatientSettings out;
    EXPECT_TRUE(client_->clinical->GetPatientSettings(&ctx, req, &out).ok());
    return out;
  }

  std::vector<v1::Alert> threshold_alerts(const std::string& patient) {
    std::vector<v1::Alert> found;
    for (auto& a : client_->list_alerts("tenants/h1"))
      if (a.patient() == patient && a.kind() == v1::ALERT_KIND_THRESHOLD)
        found.push_back(a);
    return found;
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
};

}  // namespace

TEST_F(clinical_test, per_patient_limits_replace_the_defaults_and_survive_a_restart) {
  v1::PatientSettings s;
  auto* l = s.add_alert_limits();  // a COPD patient whose normal is 86-88 %
  l->set_metric(v1::METRIC_SPO2);
  l->set_high_at_or_below(80);
  l->set_medium_at_or_below(84);
  l->set_hysteresis(1);
  s.set_spo2_scale2(true);
  v1::PatientSettings applied;
  ASSERT_TRUE(update(copd, s, &applied).ok());
  EXPECT_EQ(applied.alert_limits_size(), 1);
  EXPECT_EQ(applied.baseline_k(), 3);  // unset: default

  // SpO2 87 for a minute: MEDIUM under the default limit (<= 90), nothing
  // under the COPD patient's own.
  auto t = now_ms() - 120'000;
  for (auto [patient, device] : {std::pair{copd, copd_monitor}, std::pair{other, other_monitor}}) {
    std::vector<api_client::reading> readings;
    for (uint64_t k = 0; k < 13; ++k)
      readings.push_back({k + 1, t + static_cast<int64_t>(k) * 5000, v1::METRIC_SPO2, 87});
    v1::IngestResponse resp;
    ASSERT_TRUE(client_->send(api_client::request(device, readings), resp).ok());
    ASSERT_EQ(resp.accepted(), 13u);
  }
  std::vector<v1::Alert> others;
  for (int i = 0; i < 100 && (others = threshold_alerts(other)).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(others[0].priority(), v1::PRIORITY_MEDIUM);
  EXPECT_TRUE(threshold_alerts(copd).empty());
  // Scale 2 scores SpO2 87 on air as 1 (scale 1: 3).
  auto twin = client_->patient_twin(copd);
  EXPECT_TRUE(twin.news2().spo2_scale2());

  restart();
  auto after = get(copd);
  ASSERT_EQ(after.alert_limits_size(), 1);
  EXPECT_EQ(after.alert_limits(0).medium_at_or_below(), 84);
  EXPECT_TRUE(after.spo2_scale2());
  EXPECT_FALSE(get(other).spo2_scale2());
  EXPECT_EQ(get(other).alert_limits_size(), 0);
}

TEST_F(clinical_test, invalid_settings_name_the_field) {
  auto expect_field = [&](const v1::PatientSettings& s, const std::string& field) {
    v1::PatientSettings out;
    auto st = update(copd, s, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_NE(st.error_message().find(field), std::string::npos) << st.error_message();
  };
  v1::PatientSettings s;
  s.set_baseline_k(50);
  expect_field(s, "settings.baseline_k");
  s = {};
  s.mutable_forecast_horizon()->set_seconds(5);
  expect_field(s, "settings.forecast_horizon");
  s = {};
  auto* l = s.add_alert_limits();
  l->set_metric(v1::METRIC_HEART_RATE);
  l->set_medium_at_or_below(140);
  l->set_medium_at_or_above(120);  // crossed
  expect_field(s, "settings.alert_limits[0]");
  s = {};
  s.add_alert_limits()->set_metric(v1::METRIC_BATTERY);
  expect_field(s, "settings.alert_limits[0].metric");
  v1::PatientSettings out;
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::UpdatePatientSettingsRequest req;
  req.set_patient("tenants/h1/patients/nobody");
  req.set_updated_by("dr-who");
  EXPECT_EQ(client_->clinical->UpdatePatientSettings(&ctx, req, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(clinical_test, charted_acvpu_counts_in_news2_and_survives_a_restart) {
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::RecordObservationsRequest req;
  req.set_patient(copd);
  req.set_consciousness(3);  // responds to pain: scores 3
  req.set_oxygen_flow(2);    // on oxygen: scores 2
  req.set_recorded_by("nurse-1");
  v1::RecordObservationsResponse resp;
  ASSERT_TRUE(client_->clinical->RecordObservations(&ctx, req, &resp).ok());
  auto check = [&] {
    auto twin = client_->patient_twin(copd);
    auto* c = find_vital(twin, v1::METRIC_CONSCIOUSNESS);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->value(), 3);
    EXPECT_EQ(c->source_device(), "clinician/nurse-1");
    EXPECT_EQ(twin.news2().total(), 5u);
  };
  check();
  restart();
  check();

  grpc::ClientContext bad_ctx;
  api_client::deadline(bad_ctx);
  v1::RecordObservationsRequest bad;
  bad.set_patient(copd);
  bad.set_consciousness(7);
  bad.set_recorded_by("nurse-1");
  auto st = client_->clinical->RecordObservations(&bad_ctx, bad, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("consciousness"), std::string::npos) << st.error_message();
}
