// End-to-end tests against a real `healthtwin` process: register, ingest,
// query twins, receive alerts on the stream, acknowledge, restart.

#include <optional>
#include <future>
#include <regex>

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

const std::string patient = "tenants/h1/patients/p1";
const std::string monitor = "tenants/h1/devices/mon1";
const std::string chart = "tenants/h1/devices/chart1";

class node_e2e_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
    ASSERT_TRUE(client_->create_patient("h1", "p1", "ICU-3").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
    ASSERT_TRUE(client_->create_device("h1", "chart1", v1::DEVICE_TYPE_OBSERVATION_CHART, patient).ok());
  }

  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), 0) << node_->log();
    }
  }

  void restart() {
    ASSERT_EQ(node_->stop(), 0) << node_->log();
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
  }

  // Seven healthy NEWS2 inputs at time t.
  void ingest_healthy(int64_t t, uint64_t seq) {
    v1::IngestResponse resp;
    auto req = api_client::request(monitor, {{seq, t, v1::METRIC_RESPIRATION_RATE, 16},
                                             {seq + 1, t, v1::METRIC_SPO2, 97},
                                             {seq + 2, t, v1::METRIC_SYSTOLIC_BP, 122},
                                             {seq + 3, t, v1::METRIC_HEART_RATE, 72},
                                             {seq + 4, t, v1::METRIC_TEMPERATURE, 36.9}});
    auto* d = req.add_devices();
    d->set_device(chart);
    for (auto [m, v] : {std::pair{v1::METRIC_CONSCIOUSNESS, 0.0}, {v1::METRIC_OXYGEN_FLOW, 0.0}}) {
      d->add_sequence(seq + static_cast<uint64_t>(d->sequence_size()) + 1);
      d->add_time_ms(t);
      d->add_metric(m);
      d->add_value(v);
    }
    ASSERT_TRUE(client_->send(req, resp).ok());
    ASSERT_EQ(resp.accepted(), 7u);
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
};

}  // namespace

TEST_F(node_e2e_test, ingested_vitals_show_in_the_patient_twin_with_a_complete_news2) {
  auto t = now_ms() - 5000;
  ingest_healthy(t, 1);
  auto twin = client_->patient_twin(patient);
  EXPECT_EQ(twin.ward(), "ICU-3");
  EXPECT_EQ(twin.devices_size(), 2);
  auto* hr = find_vital(twin, v1::METRIC_HEART_RATE);
  ASSERT_NE(hr, nullptr);
  EXPECT_EQ(hr->value(), 72);
  EXPECT_EQ(hr->time_ms(), t);
  EXPECT_EQ(hr->source_device(), monitor);
  EXPECT_TRUE(twin.news2().complete());
  EXPECT_EQ(twin.news2().total(), 0u);
  EXPECT_EQ(twin.news2().band(), v1::NEWS2_BAND_LOW);
  EXPECT_EQ(twin.news2().parts_size(), 7);
  EXPECT_EQ(twin.readings_applied(), 7u);
  ASSERT_EQ(twin.news2_history_size(), 1);
  EXPECT_EQ(twin.news2_history(0).total(), 0u);
  EXPECT_EQ(twin.news2_history(0).time_ms(), t - t % (5 * 60'000));
  EXPECT_FALSE(twin.has_news2_change_1h());
}

TEST_F(node_e2e_test, news2_names_missing_parameters) {
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{1, now_ms(), v1::METRIC_HEART_RATE, 72}}), resp).ok());
  auto twin = client_->patient_twin(patient);
  EXPECT_FALSE(twin.news2().complete());
  int missing = 0;
  for (auto& p : twin.news2().parts())
    missing += p.missing() ? 1 : 0;
  EXPECT_EQ(missing, 6);
}

TEST_F(node_e2e_test, alert_arrives_on_the_stream_and_is_acknowledged) {
  grpc::ClientContext sctx;
  v1::StreamAlertsRequest sreq;
  sreq.set_parent("tenants/h1");
  sreq.set_min_priority(v1::PRIORITY_HIGH);
  sctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = client_->alerts->StreamAlerts(&sctx, sreq);
  // Let the subscription register before the reading arrives.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t = now_ms();
  ingest_healthy(t - 200'000, 1);
  // SpO2 <= 85 is HIGH once it has lasted 5 s (data time); the earlier
  // readings are long enough ago that this is no sudden (held back) jump.
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{100, t - 6000, v1::METRIC_SPO2, 84},
                                                          {101, t, v1::METRIC_SPO2, 84}}),
                            resp)
                  .ok());
  v1::AlertEvent event;
  ASSERT_TRUE(stream->Read(&event));
  EXPECT_EQ(event.type(), v1::ALERT_EVENT_TYPE_RAISED);
  EXPECT_EQ(event.alert().kind(), v1::ALERT_KIND_THRESHOLD);
  EXPECT_EQ(event.alert().metric(), v1::METRIC_SPO2);
  EXPECT_EQ(event.alert().priority(), v1::PRIORITY_HIGH);
  EXPECT_EQ(event.alert().patient(), patient);
  EXPECT_EQ(event.alert().ward(), "ICU-3");
  EXPECT_EQ(event.alert().raise_time_ms(), t);
  EXPECT_GT(event.resume_token(), 0u);

  grpc::ClientContext actx;
  api_client::deadline(actx);
  v1::AcknowledgeAlertRequest ack;
  ack.set_name(event.alert().name());
  ack.set_acknowledged_by("nurse-jones");
  ack.set_note("repositioned probe");
  v1::Alert acked;
  ASSERT_TRUE(client_->alerts->AcknowledgeAlert(&actx, ack, &acked).ok());
  EXPECT_EQ(acked.state(), v1::ALERT_STATE_ACKNOWLEDGED);
  EXPECT_EQ(acked.acknowledged_by(), "nurse-jones");
  v1::AlertEvent acked_event;
  ASSERT_TRUE(stream->Read(&acked_event));
  EXPECT_EQ(acked_event.type(), v1::ALERT_EVENT_TYPE_ACKNOWLEDGED);
  EXPECT_GT(acked_event.resume_token(), event.resume_token());
  sctx.TryCancel();

  // A clinician acts as the token's subject, whatever the request says (a
  // backend service, as above, names the clinician it acts for).
  api_client clinician{node_->channel_with(node_->token("h1", {"clinician"}, "dr-house"))};
  grpc::ClientContext rctx;
  api_client::deadline(rctx);
  v1::AcknowledgeAlertRequest reack;
  reack.set_name(event.alert().name());
  reack.set_acknowledged_by("dr-someone-else");
  v1::Alert reacked;
  auto st = clinician.alerts->AcknowledgeAlert(&rctx, reack, &reacked);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reacked.acknowledged_by(), "dr-house");

  // The patient twin lists it among its active alerts.
  auto twin = client_->patient_twin(patient);
  bool found = false;
  for (auto& a : twin.active_alerts())
    found = found || a.name() == event.alert().name();
  EXPECT_TRUE(found);
}

TEST_F(node_e2e_test, stream_resumes_from_a_token_without_gaps_or_duplicates) {
  auto t = now_ms() - 100'000;
  ingest_healthy(t - 200'000, 1);
  // HR >= 150 for 5 s raises a HIGH alert; the sudden return to normal is
  // confirmed after 45 s and resolves it 30 s later.
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{10, t, v1::METRIC_HEART_RATE, 160},
                                                          {11, t + 10'000, v1::METRIC_HEART_RATE, 160},
                                                          {12, t + 11'000, v1::METRIC_HEART_RATE, 72},
                                                          {13, t + 60'000, v1::METRIC_HEART_RATE, 72},
                                                          {14, t + 95'000, v1::METRIC_HEART_RATE, 72}}),
                            resp)
                  .ok());
  // Alerts follow the ack asynchronously: wait until the HR alert resolved.
  auto resolved = [&] {
    for (auto& a : client_->list_alerts("tenants/h1", true))
      if (a.kind() == v1::ALERT_KIND_THRESHOLD && a.state() == v1::ALERT_STATE_RESOLVED)
        return true;
    return false;
  };
  for (int i = 0; i < 200 && !resolved(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  // Replay everything (resume_after = 0), then resume after the first event.
  auto read_all = [&](uint64_t after) { return client_->replay_alerts("tenants/h1", after); };
  auto all = read_all(0);
  ASSERT_GE(all.size(), 2u);  // raised and resolved (NEWS2 alerts too)
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(all[i].resume_token(), i + 1);  // in order, no gap, no duplicate
  bool saw_resolved = false;
  for (auto& e : all)
    saw_resolved = saw_resolved || e.type() == v1::ALERT_EVENT_TYPE_RESOLVED;
  EXPECT_TRUE(saw_resolved);
  auto rest = read_all(1);
  ASSERT_EQ(rest.size(), all.size() - 1);
  for (size_t i = 0; i < rest.size(); ++i)
    EXPECT_EQ(rest[i].resume_token(), all[i + 1].resume_token());

  // A token from the future is refused.
  grpc::ClientContext ctx;
  v1::StreamAlertsRequest req;
  req.set_parent("tenants/h1");
  req.set_resume_after(all.back().resume_token() + 100);
  auto stream = client_->alerts->StreamAlerts(&ctx, req);
  v1::AlertEvent e;
  EXPECT_FALSE(stream->Read(&e));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(node_e2e_test, device_twin_reports_battery_sequence_and_online) {
  v1::IngestResponse resp;
  auto t = now_ms();
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{5, t, v1::METRIC_BATTERY, 64},
                                                          {6, t, v1::METRIC_HEART_RATE, 70}}),
                            resp)
                  .ok());
  auto d = client_->device_twin(monitor);
  EXPECT_EQ(d.type(), v1::DEVICE_TYPE_BEDSIDE_MONITOR);
  EXPECT_EQ(d.patient(), patient);
  EXPECT_TRUE(d.online());
  EXPECT_TRUE(d.has_battery());
  EXPECT_EQ(d.battery_percent(), 64);
  EXPECT_EQ(d.last_sequence(), 6u);
  EXPECT_EQ(d.readings_accepted(), 2u);
  EXPECT_EQ(d.last_reading_time_ms(), t);
  auto fresh = client_->device_twin(chart);
  EXPECT_FALSE(fresh.online());
}

TEST_F(node_e2e_test, twins_history_and_alerts_survive_a_restart) {
  auto t0 = now_ms() - 200'000;
  for (uint64_t i = 0; i < 150; ++i) {
    v1::IngestResponse resp;
    ASSERT_TRUE(client_->send(api_client::request(monitor, {{i + 1, t0 + static_cast<int64_t>(i) * 1000,
                                                             v1::METRIC_HEART_RATE, 60.0 + static_cast<double>(i % 40)}}),
                              resp)
                    .ok());
  }
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{1000, t0 + 150'000, v1::METRIC_SPO2, 80},
                                                          {1001, t0 + 156'000, v1::METRIC_SPO2, 80}}),
                            resp)
                  .ok());
  auto before = client_->history(patient, v1::METRIC_HEART_RATE, 0, now_ms());
  ASSERT_EQ(before.size(), 150u);
  restart();
  auto after = client_->history(patient, v1::METRIC_HEART_RATE, 0, now_ms());
  EXPECT_EQ(after, before);
  auto twin = client_->patient_twin(patient);
  EXPECT_EQ(twin.readings_applied(), 152u);
  EXPECT_EQ(find_vital(twin, v1::METRIC_SPO2)->value(), 80);
  ASSERT_GE(twin.active_alerts_size(), 1);
  // A sub-range is answered too.
  auto mid = client_->history(patient, v1::METRIC_HEART_RATE, t0 + 10'000, t0 + 20'000);
  EXPECT_EQ(mid.size(), 10u);
  // Downsampled: 1-minute buckets of min, max and mean.
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::GetVitalsHistoryRequest req;
  req.set_patient(patient);
  req.set_metric(v1::METRIC_HEART_RATE);
  req.set_start_time_ms(t0);
  req.set_end_time_ms(t0 + 150'000);
  req.mutable_step()->set_seconds(60);
  v1::VitalsHistory h;
  ASSERT_TRUE(client_->twins->GetVitalsHistory(&ctx, req, &h).ok());
  ASSERT_EQ(h.buckets_size(), 3);
  EXPECT_EQ(h.time_ms_size(), 0);
  EXPECT_EQ(h.buckets(0).start_time_ms(), t0);
  EXPECT_EQ(h.buckets(0).count(), 60u);
  EXPECT_EQ(h.buckets(0).min(), 60);
  EXPECT_EQ(h.buckets(0).max(), 99);
  EXPECT_EQ(h.buckets(2).count(), 30u);
  grpc::ClientContext bad_ctx;
  api_client::deadline(bad_ctx);
  req.mutable_step()->set_seconds(0);
  req.mutable_step()->set_nanos(1000);
  EXPECT_EQ(client_->twins->GetVitalsHistory(&bad_ctx, req, &h).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(node_e2e_test, health_readiness_and_metrics_are_served) {
  auto curl = [&](const std::string& path) {
    auto cmd = node_->curl(path, "-o /dev/null -w '%{http_code}'");
    std::array<char, 64> buf{};
    std::string out;
    auto* p = popen(cmd.c_str(), "r");
    while (fgets(buf.data(), buf.size(), p))
      out += buf.data();
    pclose(p);
    return out;
  };
  EXPECT_EQ(curl("/healthz"), "200");
  EXPECT_EQ(curl("/readyz"), "200");
  EXPECT_EQ(curl("/metrics"), "200");
  EXPECT_EQ(curl("/nope"), "404");
  {
    // RocksDB properties per column family are exported.
    auto cmd = node_->curl("/metrics");
    std::array<char, 4096> buf{};
    std::string body;
    auto* p = popen(cmd.c_str(), "r");
    while (fgets(buf.data(), buf.size(), p))
      body += buf.data();
    pclose(p);
    EXPECT_NE(body.find("healthtwin_storage_sst_bytes{column=\"series\"}"), std::string::npos);
    EXPECT_NE(body.find("healthtwin_storage_estimated_keys{column=\"registry\"}"), std::string::npos);
    EXPECT_NE(body.find("healthtwin_storage_engine{what=\"background_errors\"} 0"), std::string::npos);
    // RocksDB's statistics tickers too: the node has written to its WAL.
    std::smatch m;
    static const std::regex wal{R"(healthtwin_storage_events_total\{event="wal_bytes"\} ([0-9.e+]+))"};
    ASSERT_TRUE(std::regex_search(body, m, wal)) << body;
    EXPECT_GT(std::stod(m[1]), 0);
    EXPECT_NE(body.find("healthtwin_storage_events_total{event=\"block_cache_miss\"}"),
              std::string::npos);
  }

  // Standard gRPC health checking reports SERVING: HealthCheckRequest{} is
  // empty; HealthCheckResponse{status: SERVING} is 08 01.
  grpc::GenericStub generic{node_->channel()};
  {
    grpc::ClientContext hctx;
    api_client::deadline(hctx);
    grpc::ByteBuffer request{}, response;
    grpc::Slice empty{std::string{}};
    request = grpc::ByteBuffer{&empty, 1};
    std::promise<grpc::Status> done;
    generic.UnaryCall(&hctx, "/grpc.health.v1.Health/Check", {}, &request, &response,
                      [&](grpc::Status s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(response.Dump(&slices).ok());
    std::string bytes;
    for (auto& sl : slices)
      bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    EXPECT_EQ(bytes, std::string("\x08\x01", 2));
  }
  // Server reflection lists our services: one ServerReflectionRequest with
  // list_services (field 7) = "" on the bidi stream, one response back.
  {
    grpc::ClientContext rctx;
    api_client::deadline(rctx);
    grpc::CompletionQueue cq;
    auto call = generic.PrepareCall(
        &rctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    void* tag;
    bool ok;
    auto step = [&](int id) {
      EXPECT_TRUE(cq.Next(&tag, &ok));
      EXPECT_EQ(tag, reinterpret_cast<void*>(id));
      return ok;
    };
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(step(1));
    grpc::Slice req{std::string("\x3a\x00", 2)};
    grpc::ByteBuffer request{&req, 1};
    call->Write(request, reinterpret_cast<void*>(2));
    ASSERT_TRUE(step(2));
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(3));
    ASSERT_TRUE(step(3));
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(response.Dump(&slices).ok());
    std::string bytes;
    for (auto& sl : slices)
      bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    EXPECT_NE(bytes.find("healthtwin.v1.IngestService"), std::string::npos);
    EXPECT_NE(bytes.find("healthtwin.v1.AlertService"), std::string::npos);
    call->WritesDone(reinterpret_cast<void*>(4));
    step(4);
    grpc::Status st;
    call->Finish(&st, reinterpret_cast<void*>(5));
    step(5);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }

  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::NodeStatus status;
  ASSERT_TRUE(client_->cluster->GetNodeStatus(&ctx, {}, &status).ok());
  EXPECT_TRUE(status.ready());
  EXPECT_EQ(status.shards(), 64u);
  EXPECT_EQ(status.node(), "test-node");
}

TEST_F(node_e2e_test, a_patient_moves_ward_with_a_version_check_and_the_twin_follows) {
  auto get = [&] {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::GetPatientRequest req;
    req.set_name(patient);
    v1::Patient out;
    EXPECT_TRUE(client_->registry->GetPatient(&ctx, req, &out).ok());
    return out;
  };
  auto update = [&](const std::string& etag, std::vector<std::string> paths, v1::Patient& out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdatePatientRequest req;
    req.mutable_patient()->set_name(patient);
    req.mutable_patient()->set_ward("ICU-4");
    req.mutable_patient()->set_bed("2");
    req.mutable_patient()->set_home_region("eu-west");
    req.mutable_patient()->set_etag(etag);
    for (auto& p : paths)
      req.mutable_update_mask()->add_paths(p);
    return client_->registry->UpdatePatient(&ctx, req, &out);
  };
  auto before = get();
  EXPECT_EQ(before.etag(), "3");  // created, then two devices attached
  v1::Patient moved;
  auto st = update(before.etag(), {"ward", "home_region"}, moved);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(moved.ward(), "ICU-4");
  EXPECT_EQ(moved.bed(), before.bed());  // not in the mask
  EXPECT_EQ(moved.home_region(), "eu-west");
  EXPECT_EQ(moved.etag(), "4");
  // Someone who read before the move cannot overwrite it unknowingly.
  v1::Patient stale;
  EXPECT_EQ(update(before.etag(), {"bed"}, stale).error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(update("", {"name"}, stale).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(update("", {}, stale).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(update("", {"bed"}, stale).ok());  // no etag: last writer wins
  EXPECT_EQ(stale.bed(), "2");

  // The twin reports the new ward; all of it survives a restart.
  for (int i = 0; i < 50 && client_->patient_twin(patient).ward() != "ICU-4"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(client_->patient_twin(patient).ward(), "ICU-4");
  restart();
  auto after = get();
  EXPECT_EQ(after.ward(), "ICU-4");
  EXPECT_EQ(after.bed(), "2");
  EXPECT_EQ(after.home_region(), "eu-west");
  EXPECT_EQ(after.etag(), "5");
}

TEST_F(node_e2e_test, a_decommissioned_device_is_detached_its_readings_refused_for_good) {
  auto decommission = [&](v1::Device& out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::DecommissionDeviceRequest req;
    req.set_device(monitor);
    return client_->registry->DecommissionDevice(&ctx, req, &out);
  };
  v1::Device gone;
  auto st = decommission(gone);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(gone.has_decommission_time());
  EXPECT_EQ(gone.patient(), "");
  v1::Device again;
  ASSERT_TRUE(decommission(again).ok());  // nothing changes
  EXPECT_EQ(again.decommission_time().seconds(), gone.decommission_time().seconds());
  EXPECT_EQ(again.decommission_time().nanos(), gone.decommission_time().nanos());

  auto expect_refused = [&] {
    v1::IngestResponse resp;
    ASSERT_TRUE(client_->send(api_client::request(monitor, {{1, now_ms(), v1::METRIC_HEART_RATE, 72}}), resp).ok());
    EXPECT_EQ(resp.accepted(), 0u);
    ASSERT_EQ(resp.rejections_size(), 1);
    EXPECT_EQ(resp.rejections(0).reason(), v1::REJECTION_REASON_DECOMMISSIONED);
  };
  expect_refused();
  grpc::ClientContext actx;
  api_client::deadline(actx);
  v1::AssignDeviceRequest assign;
  assign.set_device(monitor);
  assign.set_patient(patient);
  v1::Device out;
  EXPECT_EQ(client_->registry->AssignDevice(&actx, assign, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  auto twin = client_->patient_twin(patient);
  EXPECT_EQ(std::count(twin.devices().begin(), twin.devices().end(), monitor), 0);

  restart();
  expect_refused();
}

TEST_F(node_e2e_test, the_device_shadow_holds_desired_and_reported_state_with_a_version_check) {
  auto update = [&](std::optional<uint64_t> expected, const std::string& averaging, v1::Device& out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdateDesiredConfigRequest req;
    req.set_device(monitor);
    (*req.mutable_desired()->mutable_settings())["spo2.averaging_s"] = averaging;
    (*req.mutable_desired()->mutable_settings())["nibp.interval_min"] = "15";
    req.mutable_desired()->set_firmware("3.1.0");
    if (expected)
      req.set_expected_version(*expected);
    return client_->registry->UpdateDesiredConfig(&ctx, req, &out);
  };
  v1::Device d;
  auto st = update(0, "8", d);  // version 0: nothing desired yet
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(d.desired().version(), 1u);
  EXPECT_EQ(d.delta().settings_size(), 2);
  EXPECT_EQ(d.delta().firmware(), "3.1.0");
  // An operator who read version 0 cannot overwrite version 1 unknowingly.
  EXPECT_EQ(update(0, "4", d).error_code(), grpc::StatusCode::ABORTED);

  // The device reports what it runs, with its own token.
  api_client device{node_->channel_with(node_->token("h1", {"device"}, "mon1", "mon1"))};
  grpc::ClientContext rctx;
  api_client::deadline(rctx);
  v1::ReportDeviceStateRequest report;
  report.set_device(monitor);
  (*report.mutable_reported()->mutable_settings())["spo2.averaging_s"] = "8";
  (*report.mutable_reported()->mutable_settings())["nibp.interval_min"] = "30";
  report.mutable_reported()->set_firmware("3.1.0");
  st = device.registry->ReportDeviceState(&rctx, report, &d);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(d.delta().settings_size(), 1);  // only the interval is still to change
  EXPECT_EQ(d.delta().settings().at("nibp.interval_min"), "15");
  EXPECT_EQ(d.delta().firmware(), "");
  // A device may not report for another device, nor set what is desired.
  grpc::ClientContext octx;
  api_client::deadline(octx);
  report.set_device(chart);
  EXPECT_EQ(device.registry->ReportDeviceState(&octx, report, &d).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Bad settings name the field.
  grpc::ClientContext bctx;
  api_client::deadline(bctx);
  v1::UpdateDesiredConfigRequest bad;
  bad.set_device(monitor);
  (*bad.mutable_desired()->mutable_settings())["Bad Name"] = "1";
  EXPECT_EQ(client_->registry->UpdateDesiredConfig(&bctx, bad, &d).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The device twin shows the shadow; it survives a restart.
  restart();
  grpc::ClientContext tctx;
  api_client::deadline(tctx);
  v1::GetDeviceTwinRequest treq;
  treq.set_name(monitor);
  v1::DeviceTwin twin;
  ASSERT_TRUE(client_->twins->GetDeviceTwin(&tctx, treq, &twin).ok());
  EXPECT_EQ(twin.desired().version(), 1u);
  EXPECT_EQ(twin.reported().settings().at("nibp.interval_min"), "30");
  ASSERT_EQ(twin.delta().settings_size(), 1);
  EXPECT_EQ(twin.delta().settings().at("nibp.interval_min"), "15");
}

// The standard process metrics an SRE's dashboards expect (issue 23):
// read from /proc on each scrape.
TEST_F(node_e2e_test, process_metrics_are_published_for_prometheus) {
  auto rss = node_->metric("process_resident_memory_bytes");
  EXPECT_GT(rss, 1e6);
  EXPECT_GT(node_->metric("process_virtual_memory_bytes"), rss);
  auto fds = node_->metric("process_open_fds");
  EXPECT_GT(fds, 3);
  EXPECT_GE(node_->metric("process_max_fds"), fds);
  auto start = node_->metric("process_start_time_seconds");
  auto now_s = static_cast<double>(now_ms()) / 1000;
  EXPECT_LE(start, now_s + 1);
  EXPECT_GT(start, now_s - 600);  // started by this test
  EXPECT_GE(node_->metric("process_cpu_seconds_total"), 0);
}

TEST(node_logs, json_lines_carry_the_callers_request_id_and_no_patient) {
  temp_dir dir;
  node_process node{dir.path(), {"--log-format=json", "--log-level=debug"}};
  ASSERT_TRUE(node.wait_ready()) << node.log();
  api_client client{node.channel()};
  ASSERT_TRUE(client.create_patient("h1", "p-secret-7731", "ICU-1").ok());
  auto stub = v1::RegistryService::NewStub(node.channel());
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  ctx.AddMetadata("x-request-id", "e2e-req-42");
  v1::GetPatientRequest req;
  req.set_name("tenants/h1/patients/nobody");
  v1::Patient out;
  EXPECT_EQ(stub->GetPatient(&ctx, req, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  // The caller hears its request id back; a caller that sent none gets the
  // node's (what the node's log lines for the call carry).
  auto echoed = ctx.GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(echoed, ctx.GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(echoed->second.data(), echoed->second.size()), "e2e-req-42");
  grpc::ClientContext plain;
  api_client::deadline(plain);
  EXPECT_EQ(stub->GetPatient(&plain, req, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  auto made = plain.GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(made, plain.GetServerInitialMetadata().end());
  std::string made_id(made->second.data(), made->second.size());
  EXPECT_EQ(made_id.size(), 16u) << made_id;
  EXPECT_EQ(made_id.find_first_not_of("0123456789abcdef"), std::string::npos) << made_id;
  ASSERT_EQ(node.stop(), 0) << node.log();

  auto log = node.log();
  std::istringstream in{log};
  int parsed = 0;
  bool found = false, found_made = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty())
      continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not a JSON line: " << line.substr(0, 200);
    ASSERT_TRUE(j.contains("time") && j.contains("level") && j.contains("message")) << line;
    ++parsed;
    if (j.value("request_id", "") == made_id)
      found_made = true;
    if (j.value("request_id", "") == "e2e-req-42") {
      EXPECT_EQ(j["message"], "RegistryService/GetPatient answered NOT_FOUND");
      found = true;
    }
  }
  EXPECT_GT(parsed, 5);
  EXPECT_TRUE(found) << log.substr(0, 4000);
  EXPECT_TRUE(found_made) << "no log line carries the id told to the caller";
  EXPECT_EQ(log.find("p-secret-7731"), std::string::npos) << "a patient id in the log";
}
