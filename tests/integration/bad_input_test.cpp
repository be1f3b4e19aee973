// Hostile and malformed input against a real node: every refusal names the
// field, nothing of a refused request is written, and the node keeps serving.

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/integration/status_details.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

const std::string patient = "tenants/h1/patients/p1";
const std::string monitor = "tenants/h1/devices/mon1";

class bad_input_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
    ASSERT_TRUE(client_->create_patient("h1", "p1", "ICU-1").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
  }
  void TearDown() override { EXPECT_EQ(node_->stop(), 0) << node_->log(); }

  uint64_t log_position() {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::NodeStatus s;
    EXPECT_TRUE(client_->cluster->GetNodeStatus(&ctx, {}, &s).ok());
    return s.log_position();
  }

  void expect_invalid(const grpc::Status& st, const std::string& field) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    auto fields = violated_fields(st);
    EXPECT_NE(std::find(fields.begin(), fields.end(), field), fields.end())
        << "expected a violation of " << field << ", got: " << st.error_message();
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
};

}  // namespace

TEST_F(bad_input_test, each_bad_reading_is_rejected_with_its_field_and_the_rest_accepted) {
  auto t = now_ms();
  double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  auto req = api_client::request(monitor, {{1, t, v1::METRIC_HEART_RATE, 72},           // ok
                                           {2, t, v1::METRIC_HEART_RATE, nan},          // not finite
                                           {3, t, v1::METRIC_SPO2, inf},                // not finite
                                           {4, t, v1::METRIC_HEART_RATE, 400},          // range
                                           {5, t + 10 * 60'000, v1::METRIC_SPO2, 97},   // future
                                           {6, t, v1::METRIC_GLUCOSE, 90},              // unsupported
                                           {0, t, v1::METRIC_SPO2, 97},                 // seq 0
                                           {7, t, static_cast<v1::Metric>(77), 1},      // metric
                                           {1, t, v1::METRIC_HEART_RATE, 72},           // duplicate
                                           {8, t, v1::METRIC_SPO2, 96}});               // ok
  auto* ghost = req.add_devices();
  ghost->set_device("tenants/h1/devices/ghost");
  ghost->add_sequence(1);
  ghost->add_time_ms(t);
  ghost->add_metric(v1::METRIC_HEART_RATE);
  ghost->add_value(70);
  auto* bad = req.add_devices();
  bad->set_device("tenants/h1/devices/NOT VALID");
  bad->add_sequence(1);
  bad->add_time_ms(t);
  bad->add_metric(v1::METRIC_HEART_RATE);
  bad->add_value(70);
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(req, resp).ok());
  EXPECT_EQ(resp.accepted(), 2u);
  std::vector<std::tuple<uint32_t, std::string, v1::RejectionReason>> got;
  for (auto& r : resp.rejections()) {
    got.emplace_back(r.index(), r.field(), r.reason());
    EXPECT_FALSE(r.description().empty());
  }
  std::vector<std::tuple<uint32_t, std::string, v1::RejectionReason>> want{
      {1, "devices[0].value[1]", v1::REJECTION_REASON_NOT_FINITE},
      {2, "devices[0].value[2]", v1::REJECTION_REASON_NOT_FINITE},
      {3, "devices[0].value[3]", v1::REJECTION_REASON_OUT_OF_RANGE},
      {4, "devices[0].time_ms[4]", v1::REJECTION_REASON_FUTURE_TIMESTAMP},
      {5, "devices[0].metric[5]", v1::REJECTION_REASON_METRIC_NOT_SUPPORTED},
      {6, "devices[0].sequence[6]", v1::REJECTION_REASON_INVALID_SEQUENCE},
      {7, "devices[0].metric[7]", v1::REJECTION_REASON_INVALID_METRIC},
      {8, "devices[0].sequence[8]", v1::REJECTION_REASON_DUPLICATE},
      {10, "devices[1]", v1::REJECTION_REASON_UNKNOWN_DEVICE},
      {11, "devices[2].device", v1::REJECTION_REASON_INVALID_NAME},
  };
  EXPECT_EQ(got, want);
  EXPECT_EQ(client_->patient_twin(patient).readings_applied(), 2u);
}

TEST_F(bad_input_test, malformed_requests_are_refused_whole_and_nothing_is_written) {
  auto before = log_position();
  v1::IngestResponse resp;
  v1::IngestRequest empty;
  expect_invalid(client_->send(empty, resp), "devices");

  auto mismatch = api_client::request(monitor, {{1, now_ms(), v1::METRIC_HEART_RATE, 72}});
  mismatch.mutable_devices(0)->add_value(73);
  expect_invalid(client_->send(mismatch, resp), "devices[0].value");

  std::vector<api_client::reading> many;
  for (uint64_t i = 1; i <= 10'001; ++i)
    many.push_back({i, now_ms(), v1::METRIC_HEART_RATE, 70});
  expect_invalid(client_->send(api_client::request(monitor, many), resp), "devices");

  // Over the 4 MiB application limit: refused naming the request.
  auto huge = api_client::request(monitor, {{1, now_ms(), v1::METRIC_HEART_RATE, 72}});
  huge.mutable_devices(0)->set_device(std::string(5 << 20, 'x'));
  expect_invalid(client_->send(huge, resp), "request");

  // Over the transport limit (16 MiB): refused before it is even parsed.
  huge.mutable_devices(0)->set_device(std::string(17 << 20, 'x'));
  auto st = client_->send(huge, resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();

  EXPECT_EQ(log_position(), before);
  // The node still serves valid requests.
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{1, now_ms(), v1::METRIC_HEART_RATE, 72}}), resp).ok());
  EXPECT_EQ(resp.accepted(), 1u);
  EXPECT_EQ(log_position(), before + 1);
}

TEST_F(bad_input_test, a_malformed_batch_ends_a_stream_after_acking_earlier_batches) {
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  auto stream = client_->ingest->StreamIngest(&ctx);
  ASSERT_TRUE(stream->Write(api_client::request(monitor, {{1, now_ms(), v1::METRIC_HEART_RATE, 72}}, 11)));
  v1::IngestRequest bad = api_client::request(monitor, {{2, now_ms(), v1::METRIC_HEART_RATE, 72}}, 12);
  bad.mutable_devices(0)->add_sequence(3);
  ASSERT_TRUE(stream->Write(bad));
  stream->WritesDone();
  v1::IngestResponse ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.batch_id(), 11u);
  EXPECT_EQ(ack.accepted(), 1u);
  EXPECT_FALSE(stream->Read(&ack));
  auto st = stream->Finish();
  expect_invalid(st, "devices[0].time_ms");
}

TEST_F(bad_input_test, registry_twin_and_alert_calls_name_the_bad_field) {
  grpc::Status st;
  {
    grpc::ClientContext ctx;
    v1::CreatePatientRequest req;
    req.set_parent("hospitals/h1");
    req.set_patient_id("Bad_Id");
    v1::Patient out;
    st = client_->registry->CreatePatient(&ctx, req, &out);
    expect_invalid(st, "parent");
    expect_invalid(st, "patient_id");
    expect_invalid(st, "patient.ward");
  }
  {
    grpc::ClientContext ctx;
    v1::CreatePatientRequest req;
    req.set_parent("tenants/h1");
    req.set_patient_id("p2");
    req.mutable_patient()->set_ward(std::string("ICU\n-3"));
    v1::Patient out;
    expect_invalid(client_->registry->CreatePatient(&ctx, req, &out), "patient.ward");
  }
  expect_invalid(client_->create_device("h1", "d2", v1::DEVICE_TYPE_UNSPECIFIED), "device.type");
  expect_invalid(client_->create_device("h1", "d2", static_cast<v1::DeviceType>(42)), "device.type");
  EXPECT_EQ(client_->create_patient("h1", "p1", "ICU-1").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  {
    grpc::ClientContext ctx;
    v1::AssignDeviceRequest req;
    req.set_device(monitor);
    req.set_patient("tenants/h2/patients/p1");
    v1::Device out;
    expect_invalid(client_->registry->AssignDevice(&ctx, req, &out), "patient");
  }
  {
    grpc::ClientContext ctx;
    v1::GetPatientTwinRequest req;
    req.set_name("tenants/h1/patients/nobody");
    v1::PatientTwin out;
    EXPECT_EQ(client_->twins->GetPatientTwin(&ctx, req, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::GetVitalsHistoryRequest req;
    req.set_patient(patient);
    req.set_metric(v1::METRIC_UNSPECIFIED);
    req.set_start_time_ms(10);
    req.set_end_time_ms(5);
    req.set_page_size(-1);
    req.set_page_token("zz");
    v1::VitalsHistory out;
    st = client_->twins->GetVitalsHistory(&ctx, req, &out);
    for (auto f : {"metric", "end_time_ms", "page_size", "page_token"})
      expect_invalid(st, f);
  }
  {
    grpc::ClientContext ctx;
    v1::AcknowledgeAlertRequest req;
    req.set_name("tenants/h1/patients/p1/alarms/1");
    req.set_acknowledged_by("nurse\x01");  // a service names the clinician; empty: itself
    req.set_note(std::string(1001, 'n'));
    v1::Alert out;
    st = client_->alerts->AcknowledgeAlert(&ctx, req, &out);
    for (auto f : {"name", "acknowledged_by", "note"})
      expect_invalid(st, f);
  }
  {
    grpc::ClientContext ctx;
    v1::AcknowledgeAlertRequest req;
    req.set_name("tenants/h1/patients/p1/alerts/999");
    req.set_acknowledged_by("dr-x");
    v1::Alert out;
    EXPECT_EQ(client_->alerts->AcknowledgeAlert(&ctx, req, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::ListAlertsRequest req;
    req.set_parent("tenants/h1");
    req.set_min_priority(static_cast<v1::Priority>(7));
    v1::ListAlertsResponse out;
    expect_invalid(client_->alerts->ListAlerts(&ctx, req, &out), "min_priority");
  }
}
