// Input an attacker or a careless client sends, class by class (issue 19):
// every refusal has the right code, names the field and quotes at most a
// bounded prefix of what was sent; the node keeps serving.

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

class hostile_input_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
    ASSERT_TRUE(client_->create_patient("h1", "p1", "ICU-1").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
  }
  void TearDown() override { EXPECT_EQ(node_->stop(), 0) << node_->log(); }

  // INVALID_ARGUMENT naming `field`, with a message and details small
  // enough for any client, quoting no more than a prefix of the input.
  static void expect_bounded_refusal(const grpc::Status& st, const std::string& field) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message().substr(0, 300);
    EXPECT_LE(st.error_message().size(), 1024u);
    EXPECT_LE(st.error_details().size(), 4096u);
    auto fields = violated_fields(st);
    EXPECT_NE(std::find(fields.begin(), fields.end(), field), fields.end())
        << "expected a violation of " << field << ", got: " << st.error_message().substr(0, 300);
  }

  grpc::Status update_patient(const std::string& path, const std::string& region = "eu-west") {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdatePatientRequest req;
    req.mutable_patient()->set_name(patient);
    req.mutable_patient()->set_ward("ICU-2");
    req.mutable_patient()->set_home_region(region);
    req.mutable_update_mask()->add_paths(path);
    v1::Patient out;
    return client_->registry->UpdatePatient(&ctx, req, &out);
  }

  grpc::Status get_twin(const std::string& path) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::GetPatientTwinRequest req;
    req.set_name(patient);
    req.mutable_read_mask()->add_paths(path);
    v1::PatientTwin out;
    return client_->twins->GetPatientTwin(&ctx, req, &out);
  }

  grpc::Status create_patient(const std::string& id, const std::string& region, v1::Patient& out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::CreatePatientRequest req;
    req.set_parent("tenants/h1");
    req.set_patient_id(id);
    req.mutable_patient()->set_ward("ICU-1");
    req.mutable_patient()->set_home_region(region);
    return client_->registry->CreatePatient(&ctx, req, &out);
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
};

}  // namespace

// Class 1: a reply that echoed a long input grew past the client's
// metadata limit, which turned INVALID_ARGUMENT into RESOURCE_EXHAUSTED.
TEST_F(hostile_input_test, errors_quote_only_a_bounded_prefix_of_what_was_sent) {
  for (size_t n : {size_t{4000}, size_t{64} << 10, size_t{1} << 20}) {
    std::string path(n, 'x');
    expect_bounded_refusal(update_patient(path), "update_mask.paths[0]");
    expect_bounded_refusal(get_twin(path), "read_mask.paths[0]");
  }
  {  // a filter (at most 2,000 bytes) whose only token is an unknown field
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::ListPatientTwinsRequest req;
    req.set_parent("tenants/h1");
    req.set_filter(std::string(1999, 'f') + " = 1");
    req.set_order_by(std::string(1999, 'o'));
    v1::ListPatientTwinsResponse out;
    auto st = client_->twins->ListPatientTwins(&ctx, req, &out);
    expect_bounded_refusal(st, "filter");
    expect_bounded_refusal(st, "order_by");
    for (auto& v : field_violations(st))
      EXPECT_LE(v.description().size(), 256u) << v.field();
  }
  {  // many bad settings: the details stay bounded too
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdateDesiredConfigRequest req;
    req.set_device(monitor);
    for (int i = 0; i < 64; ++i)
      (*req.mutable_desired()->mutable_settings())["s" + std::to_string(i)] = std::string(300, '\x01');
    v1::Device out;
    auto st = client_->registry->UpdateDesiredConfig(&ctx, req, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LE(st.error_details().size(), 4096u);
    EXPECT_EQ(field_violations(st).size(), 16u);
    EXPECT_NE(st.error_message().find("(and 63 more)"), std::string::npos) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdateDesiredConfigRequest req;
    req.set_device(monitor);
    req.mutable_desired()->set_firmware(std::string(1 << 20, 'v'));
    v1::Device out;
    expect_bounded_refusal(client_->registry->UpdateDesiredConfig(&ctx, req, &out), "desired.firmware");
  }
  EXPECT_EQ(client_->patient_twin(patient).name(), patient);  // still serving
}

// Class 2: one rule set for every string and mask field, on create and
// update alike (docs/api.md, "Field rules").
TEST_F(hostile_input_test, home_region_is_checked_on_create_as_on_update_and_kept) {
  v1::Patient out;
  for (auto bad : {std::string(1 << 20, 'r'), std::string{"UPPER_case!"}}) {
    expect_bounded_refusal(create_patient("p2", bad, out), "patient.home_region");
    expect_bounded_refusal(update_patient("home_region", bad), "patient.home_region");
  }
  ASSERT_TRUE(create_patient("p3", "eu-west", out).ok());
  EXPECT_EQ(out.home_region(), "eu-west");
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::GetPatientRequest get;
  get.set_name("tenants/h1/patients/p3");
  v1::Patient read;
  ASSERT_TRUE(client_->registry->GetPatient(&ctx, get, &read).ok());
  EXPECT_EQ(read.home_region(), "eu-west");
  EXPECT_TRUE(update_patient("home_region", "us-east").ok());
}

TEST_F(hostile_input_test, a_mask_path_with_an_empty_segment_is_refused) {
  expect_bounded_refusal(get_twin("news2..total"), "read_mask.paths[0]");
  expect_bounded_refusal(get_twin("news2."), "read_mask.paths[0]");
  expect_bounded_refusal(update_patient("ward."), "update_mask.paths[0]");
  EXPECT_TRUE(get_twin("news2.total").ok());
}

TEST_F(hostile_input_test, notes_and_reasons_refuse_control_characters) {
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::SilenceAlertsRequest req;
  req.set_patient(patient);
  req.mutable_duration()->set_seconds(60);
  req.set_reason("known AF\x1b[2J");
  v1::SilenceAlertsResponse out;
  grpc::ClientContext cctx;
  api_client::deadline(cctx);
  auto clinician = api_client{node_->channel_with(node_->token("h1", {"clinician"}, "dr-1"))};
  expect_bounded_refusal(clinician.alerts->SilenceAlerts(&cctx, req, &out), "reason");
}

// Class 3: a malformed device name is a per-reading INVALID_NAME whether
// or not a valid group sits beside it (it was PERMISSION_DENIED alone).
TEST_F(hostile_input_test, a_malformed_device_name_is_rejected_per_reading_alone_or_beside_another) {
  auto t = now_ms();
  auto alone = api_client::request("tenants/h1/devices/Bad Name!", {{1, t, v1::METRIC_HEART_RATE, 70}});
  auto beside = alone;
  auto* ok = beside.add_devices();
  ok->set_device(monitor);
  ok->add_sequence(1);
  ok->add_time_ms(t);
  ok->add_metric(v1::METRIC_HEART_RATE);
  ok->add_value(70);
  auto device = api_client{node_->channel_with(node_->token("h1", {"device"}, "mon1", "mon1"))};
  for (auto* via : {client_.get(), &device}) {
    for (auto* req : {&alone, &beside}) {
      v1::IngestResponse resp;
      auto st = via->send(*req, resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_GE(resp.rejections_size(), 1);
      EXPECT_EQ(resp.rejections(0).reason(), v1::REJECTION_REASON_INVALID_NAME);
      EXPECT_EQ(resp.rejections(0).field(), "devices[0].device");
    }
  }
  // Another tenant's device is still refused whole.
  auto other = api_client::request("tenants/h2/devices/mon1", {{1, t, v1::METRIC_HEART_RATE, 70}});
  v1::IngestResponse resp;
  EXPECT_EQ(client_->send(other, resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

// Class 6: a huge bearer token dropped the connection (the next call on
// the channel failed UNAVAILABLE); it is UNAUTHENTICATED and the channel
// stays usable.
TEST_F(hostile_input_test, an_oversized_token_is_unauthenticated_and_the_channel_stays_usable) {
  auto channel = node_->channel_with("");
  api_client bare{channel};
  auto call = [&](const std::string& bearer) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    ctx.AddMetadata("authorization", "Bearer " + bearer);
    v1::GetPatientRequest req;
    req.set_name(patient);
    v1::Patient out;
    return bare.registry->GetPatient(&ctx, req, &out);
  };
  for (size_t n : {size_t{16} << 10, size_t{1} << 20}) {
    auto st = call(std::string(n, 'a'));
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << n << ": " << st.error_message();
    auto next = call(node_->token());
    EXPECT_TRUE(next.ok()) << n << ": " << next.error_message();
  }
}
