// Twin queries against a real `healthtwin` process: ListPatientTwins with a
// filter, ordering, pagination and read masks, and WatchPatientTwin.

#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

std::string patient(const std::string& id) { return "tenants/h1/patients/" + id; }

class twin_query_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
    // ICU-3: p1 and p2 deteriorate, p3 is well; ICU-4: p4 deteriorates;
    // p5 has no device. Another hospital has a deteriorating ICU-3 patient.
    for (auto [id, ward] : {std::pair{"p1", "ICU-3"}, {"p2", "ICU-3"}, {"p3", "ICU-3"},
                            {"p4", "ICU-4"}, {"p5", "ICU-3"}})
      ASSERT_TRUE(client_->create_patient("h1", id, ward).ok());
    api_client other{node_->channel("h2")};
    ASSERT_TRUE(other.create_patient("h2", "p1", "ICU-3").ok());
    ASSERT_TRUE(other.create_device("h2", "m1", v1::DEVICE_TYPE_BEDSIDE_MONITOR,
                                    "tenants/h2/patients/p1").ok());
    auto t = now_ms();
    uint64_t batch = 1;
    auto vitals = [&](api_client& c, const std::string& device, double rr, double spo2, double hr) {
      v1::IngestResponse resp;
      std::vector<api_client::reading> rs;
      uint64_t seq = 1;
      for (int64_t dt : {6000, 0})
        for (auto [m, v] : {std::pair{v1::METRIC_RESPIRATION_RATE, rr}, {v1::METRIC_SPO2, spo2},
                            {v1::METRIC_HEART_RATE, hr}})
          rs.push_back({seq++, t - dt, m, v});
      ASSERT_TRUE(c.send(api_client::request(device, rs, batch++), resp).ok());
      ASSERT_EQ(resp.accepted(), rs.size());
    };
    for (auto [id, rr, spo2, hr] : {std::tuple{"p1", 28.0, 85.0, 160.0}, {"p2", 22.0, 93.0, 155.0},
                                    {"p3", 16.0, 97.0, 72.0}, {"p4", 28.0, 85.0, 160.0}}) {
      ASSERT_TRUE(client_->create_device("h1", std::string{"m-"} + id,
                                         v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient(id)).ok());
      vitals(*client_, std::string{"tenants/h1/devices/m-"} + id, rr, spo2, hr);
    }
    vitals(other, "tenants/h2/devices/m1", 28, 85, 160);
  }

  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), 0) << node_->log();
    }
  }

  grpc::Status list(const v1::ListPatientTwinsRequest& req, v1::ListPatientTwinsResponse& out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    return client_->twins->ListPatientTwins(&ctx, req, &out);
  }

  static v1::ListPatientTwinsRequest query(std::string filter, std::string order_by = {}) {
    v1::ListPatientTwinsRequest req;
    req.set_parent("tenants/h1");
    req.set_filter(std::move(filter));
    req.set_order_by(std::move(order_by));
    return req;
  }

  std::vector<std::string> names(const v1::ListPatientTwinsRequest& req) {
    v1::ListPatientTwinsResponse out;
    auto st = list(req, out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::vector<std::string> v;
    for (auto& t : out.patient_twins())
      v.push_back(t.name());
    return v;
  }

  // Waits until the summaries show what the readings above raise (alerts
  // pass their onset delay and group commit first).
  void await_alerts() {
    for (int i = 0; i < 200; ++i) {
      if (names(query("alerts.priority = HIGH")).size() == 3)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the HIGH alerts never showed in the summaries";
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
};

}  // namespace

TEST_F(twin_query_test, the_issue_filter_finds_exactly_the_deteriorating_icu3_patients) {
  await_alerts();
  auto found = names(query(R"(ward = "ICU-3" AND news2 >= 5 AND alerts.priority = HIGH)",
                           "news2 desc"));
  EXPECT_EQ(found, (std::vector<std::string>{patient("p1"), patient("p2")}));
  // Every patient of the tenant, the one without a device included, by name.
  EXPECT_EQ(names(query("")).size(), 5u);
  EXPECT_EQ(names(query(R"(ward = "ICU*" AND NOT news2 >= 0)")),
            std::vector<std::string>{patient("p5")});
  EXPECT_EQ(names(query("news2 < 5")), std::vector<std::string>{patient("p3")});
}

TEST_F(twin_query_test, pages_cover_every_match_once_in_order) {
  await_alerts();
  auto req = query("", "ward desc, name desc");
  req.set_page_size(2);
  std::vector<std::string> all;
  for (int pages = 0; pages < 10; ++pages) {
    v1::ListPatientTwinsResponse out;
    ASSERT_TRUE(list(req, out).ok());
    EXPECT_EQ(out.total_size(), 5);
    for (auto& t : out.patient_twins())
      all.push_back(t.name());
    if (out.next_page_token().empty())
      break;
    req.set_page_token(out.next_page_token());
  }
  EXPECT_EQ(all, (std::vector<std::string>{patient("p4"), patient("p5"), patient("p3"),
                                            patient("p2"), patient("p1")}));

  // A token belongs to its query.
  auto first = query("", "ward desc, name desc");
  first.set_page_size(2);
  v1::ListPatientTwinsResponse out;
  ASSERT_TRUE(list(first, out).ok());
  auto other = query("news2 >= 0");
  other.set_page_token(out.next_page_token());
  auto st = list(other, out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("page_token"), std::string::npos) << st.error_message();
}

TEST_F(twin_query_test, a_patient_added_before_the_next_page_repeats_or_hides_no_one) {
  await_alerts();
  auto req = query("", "ward, name");
  req.set_page_size(2);
  v1::ListPatientTwinsResponse out;
  ASSERT_TRUE(list(req, out).ok());
  std::vector<std::string> all;
  for (auto& t : out.patient_twins())
    all.push_back(t.name());
  ASSERT_EQ(all, (std::vector<std::string>{patient("p1"), patient("p2")}));
  // p0 sorts before the page's last patient: with offsets, p2 came again.
  ASSERT_TRUE(client_->create_patient("h1", "p0", "ICU-3").ok());
  for (int pages = 0; pages < 10 && !out.next_page_token().empty(); ++pages) {
    req.set_page_token(out.next_page_token());
    ASSERT_TRUE(list(req, out).ok());
    EXPECT_EQ(out.total_size(), 6);
    for (auto& t : out.patient_twins())
      all.push_back(t.name());
  }
  EXPECT_EQ(all, (std::vector<std::string>{patient("p1"), patient("p2"), patient("p3"), patient("p5"),
                                            patient("p4")}));
  // A token that was tampered with is refused, naming the field.
  req.set_page_token(req.page_token() + "00");
  auto st = list(req, out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
}

TEST_F(twin_query_test, bad_queries_name_their_field) {
  v1::ListPatientTwinsResponse out;
  auto expect_bad = [&](const v1::ListPatientTwinsRequest& req, const std::string& field,
                        const std::string& says) {
    auto st = list(req, out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_NE(st.error_message().find(field), std::string::npos) << st.error_message();
    EXPECT_NE(st.error_message().find(says), std::string::npos) << st.error_message();
  };
  expect_bad(query("news2 >= high"), "filter", "'news2' takes a whole number");
  expect_bad(query("", "colour"), "order_by", "cannot order by 'colour'");
  auto req = query("");
  req.set_page_size(501);
  expect_bad(req, "page_size", "between 0 and 500");
  req = query("");
  req.mutable_read_mask()->add_paths("news2.colour");
  expect_bad(req, "read_mask", "'news2.colour' is not a field of PatientTwin");
  req = query("");
  req.set_parent("tenants/");
  expect_bad(req, "parent", "tenants/{tenant}");
}

TEST_F(twin_query_test, another_tenant_is_neither_listed_nor_listable) {
  await_alerts();
  for (auto& name : names(query("")))
    EXPECT_EQ(name.rfind("tenants/h1/", 0), 0u) << name;
  auto req = query("");
  req.set_parent("tenants/h2");
  v1::ListPatientTwinsResponse out;
  EXPECT_EQ(list(req, out).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(out.patient_twins_size(), 0);
}

TEST_F(twin_query_test, a_read_mask_keeps_only_the_named_fields) {
  await_alerts();
  auto req = query(R"(name = "tenants/h1/patients/p1")");
  req.mutable_read_mask()->add_paths("name");
  req.mutable_read_mask()->add_paths("news2.total");
  v1::ListPatientTwinsResponse out;
  ASSERT_TRUE(list(req, out).ok());
  ASSERT_EQ(out.patient_twins_size(), 1);
  auto& t = out.patient_twins(0);
  EXPECT_EQ(t.name(), patient("p1"));
  EXPECT_GE(t.news2().total(), 9u);
  EXPECT_TRUE(t.ward().empty());
  EXPECT_EQ(t.vitals_size(), 0);
  EXPECT_EQ(t.active_alerts_size(), 0);
  EXPECT_EQ(t.news2().parts_size(), 0);

  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::GetPatientTwinRequest get;
  get.set_name(patient("p1"));
  get.mutable_read_mask()->add_paths("active_alerts");
  v1::PatientTwin twin;
  ASSERT_TRUE(client_->twins->GetPatientTwin(&ctx, get, &twin).ok());
  EXPECT_GT(twin.active_alerts_size(), 0);
  EXPECT_TRUE(twin.name().empty());
}

TEST_F(twin_query_test, patients_created_later_and_after_a_restart_are_listed) {
  EXPECT_EQ(names(query("")).size(), 5u);
  ASSERT_TRUE(client_->create_patient("h1", "p6", "WARD-9").ok());
  EXPECT_EQ(names(query(R"(ward = "WARD-9")")), std::vector<std::string>{patient("p6")});
  ASSERT_EQ(node_->stop(), 0) << node_->log();
  node_ = std::make_unique<node_process>(dir_.path());
  ASSERT_TRUE(node_->wait_ready()) << node_->log();
  client_ = std::make_unique<api_client>(node_->channel());
  EXPECT_EQ(names(query("")).size(), 6u);
  EXPECT_EQ(names(query(R"(ward = "WARD-9")")), std::vector<std::string>{patient("p6")});
}

// After a restart no patient twin is live: the summaries' NEWS2 comes from
// the snapshots, so a NEWS2 filter finds the deteriorating patients at once.
TEST_F(twin_query_test, news2_filters_work_right_after_a_restart) {
  await_alerts();
  ASSERT_EQ(node_->stop(), 0) << node_->log();
  node_ = std::make_unique<node_process>(dir_.path());
  ASSERT_TRUE(node_->wait_ready()) << node_->log();
  client_ = std::make_unique<api_client>(node_->channel());
  EXPECT_EQ(names(query(R"(ward = "ICU-3" AND news2 >= 5)", "news2 desc")),
            (std::vector<std::string>{patient("p1"), patient("p2")}));
  EXPECT_EQ(names(query("news2 < 5")), std::vector<std::string>{patient("p3")});
  EXPECT_EQ(names(query(R"(ward = "ICU*" AND NOT news2 >= 0)")),
            std::vector<std::string>{patient("p5")});
}

TEST_F(twin_query_test, a_watch_sends_the_twin_then_each_change_until_cancelled) {
  await_alerts();  // the readings above are applied
  grpc::ClientContext ctx;
  api_client::deadline(ctx, 20);
  v1::WatchPatientTwinRequest req;
  req.set_name(patient("p3"));
  req.mutable_read_mask()->add_paths("name");
  req.mutable_read_mask()->add_paths("readings_applied");
  req.mutable_min_interval()->set_nanos(100'000'000);
  auto stream = client_->twins->WatchPatientTwin(&ctx, req);
  v1::PatientTwin first;
  ASSERT_TRUE(stream->Read(&first));
  EXPECT_EQ(first.name(), patient("p3"));
  EXPECT_TRUE(first.ward().empty());  // masked
  auto before = first.readings_applied();

  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request("tenants/h1/devices/m-p3",
                                                {{100, now_ms(), v1::METRIC_HEART_RATE, 75}}, 99),
                            resp).ok());
  v1::PatientTwin next;
  ASSERT_TRUE(stream->Read(&next));
  EXPECT_EQ(next.readings_applied(), before + 1);
  ctx.TryCancel();
  while (stream->Read(&next)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);

  // Another hospital's patient cannot be watched.
  grpc::ClientContext other;
  api_client::deadline(other);
  req.set_name("tenants/h2/patients/p1");
  auto denied = client_->twins->WatchPatientTwin(&other, req);
  EXPECT_FALSE(denied->Read(&next));
  EXPECT_EQ(denied->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(twin_query_test, a_device_watch_follows_readings_and_the_shadow) {
  await_alerts();  // the readings above are applied
  grpc::ClientContext ctx;
  api_client::deadline(ctx, 20);
  v1::WatchDeviceTwinRequest req;
  req.set_name("tenants/h1/devices/m-p3");
  req.mutable_read_mask()->add_paths("readings_accepted");
  req.mutable_read_mask()->add_paths("desired");
  req.mutable_min_interval()->set_nanos(100'000'000);
  auto stream = client_->twins->WatchDeviceTwin(&ctx, req);
  v1::DeviceTwin first;
  ASSERT_TRUE(stream->Read(&first));
  EXPECT_EQ(first.readings_accepted(), 6u);
  EXPECT_TRUE(first.name().empty());  // masked

  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request("tenants/h1/devices/m-p3",
                                                {{100, now_ms(), v1::METRIC_HEART_RATE, 75}}, 99),
                            resp).ok());
  v1::DeviceTwin next;
  ASSERT_TRUE(stream->Read(&next));
  EXPECT_EQ(next.readings_accepted(), 7u);

  grpc::ClientContext uctx;
  api_client::deadline(uctx);
  v1::UpdateDesiredConfigRequest update;
  update.set_device("tenants/h1/devices/m-p3");
  update.mutable_desired()->set_firmware("2.5.0");
  v1::Device device;
  ASSERT_TRUE(client_->registry->UpdateDesiredConfig(&uctx, update, &device).ok());
  ASSERT_TRUE(stream->Read(&next));
  EXPECT_EQ(next.desired().firmware(), "2.5.0");
  ctx.TryCancel();
  while (stream->Read(&next)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(twin_query_test, alerts_list_by_patient_and_state) {
  await_alerts();
  auto list = [&](const std::string& patient_name, std::vector<v1::AlertState> states,
                  v1::ListAlertsResponse& out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::ListAlertsRequest req;
    req.set_parent("tenants/h1");
    req.set_patient(patient_name);
    for (auto s : states)
      req.add_states(s);
    return client_->alerts->ListAlerts(&ctx, req, &out);
  };
  v1::ListAlertsResponse out;
  ASSERT_TRUE(list(patient("p1"), {}, out).ok());
  ASSERT_GT(out.alerts_size(), 0);
  for (auto& a : out.alerts())
    EXPECT_EQ(a.patient(), patient("p1"));
  auto first = out.alerts(0).name();

  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::AcknowledgeAlertRequest ack;
  ack.set_name(first);
  v1::Alert acked;
  ASSERT_TRUE(client_->alerts->AcknowledgeAlert(&ctx, ack, &acked).ok());
  ASSERT_TRUE(list(patient("p1"), {v1::ALERT_STATE_ACKNOWLEDGED}, out).ok());
  ASSERT_EQ(out.alerts_size(), 1);
  EXPECT_EQ(out.alerts(0).name(), first);
  ASSERT_TRUE(list(patient("p1"), {v1::ALERT_STATE_ACTIVE}, out).ok());
  for (auto& a : out.alerts())
    EXPECT_NE(a.name(), first);

  auto st = list("tenants/h2/patients/p1", {}, out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("patient"), std::string::npos);
  st = list(patient("p1"), {v1::ALERT_STATE_UNSPECIFIED}, out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("states"), std::string::npos);
}
