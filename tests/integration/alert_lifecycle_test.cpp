// The alert lifecycle through the real gRPC API of a `healthtwin` process,
// across restarts: raised -> escalated (unacknowledged) -> acknowledged ->
// resolved by hand; silences; every change on the resumable stream.

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

const std::string patient = "tenants/h1/patients/p1";
const std::string monitor = "tenants/h1/devices/mon1";

class alert_lifecycle_test : public ::testing::Test {
protected:
  void SetUp() override {
    start();
    ASSERT_TRUE(client_->create_patient("h1", "p1", "ICU-3").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
  }

  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), 0) << node_->log();
    }
  }

  void start() {
    node_ = std::make_unique<node_process>(
        dir_.path(), std::vector<std::string>{"--alert-escalate-after-ms=1000"});
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
  }

  void restart() {
    ASSERT_EQ(node_->stop(), 0) << node_->log();
    start();
  }

  std::optional<v1::Alert> find(const std::string& name) {
    for (auto& a : client_->list_alerts("tenants/h1", true))
      if (a.name() == name)
        return a;
    return std::nullopt;
  }

  // Waits (up to 10 s) until the alert satisfies `pred`.
  template <class Pred>
  std::optional<v1::Alert> await(const std::string& name, Pred pred) {
    for (int i = 0; i < 200; ++i) {
      auto a = find(name);
      if (a && pred(*a))
        return a;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return find(name);
  }

  std::vector<v1::AlertEvent> replay_all() { return client_->replay_alerts("tenants/h1"); }

  // The alert of the last event of this kind on the stream, waiting for one
  // to appear (a few seconds at most).
  std::optional<v1::Alert> await_event_of(v1::AlertKind kind) {
    std::optional<v1::Alert> alert;
    for (int i = 0; i < 100 && !alert; ++i) {
      for (auto& e : replay_all())
        if (e.alert().kind() == kind)
          alert = e.alert();
      if (!alert)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return alert;
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
};

}  // namespace

TEST_F(alert_lifecycle_test, raise_escalate_acknowledge_and_resolve_across_restarts) {
  auto t = now_ms();
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{1, t - 6000, v1::METRIC_HEART_RATE, 160},
                                                          {2, t, v1::METRIC_HEART_RATE, 160}}),
                            resp)
                  .ok());
  std::string name;
  for (int i = 0; i < 100 && name.empty(); ++i) {
    for (auto& a : client_->list_alerts("tenants/h1"))
      if (a.kind() == v1::ALERT_KIND_THRESHOLD)
        name = a.name();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(name.empty());
  // The reading-to-alert latency histogram took it (from the reading's
  // commit to the alert's durable fan-out; well under a second here).
  EXPECT_GE(node_->metric("healthtwin_alerts_reading_to_alert_seconds_count"), 1);
  EXPECT_LT(node_->metric("healthtwin_alerts_reading_to_alert_seconds_sum"),
            node_->metric("healthtwin_alerts_reading_to_alert_seconds_count"));

  // Unacknowledged HIGH: re-notified every second with a higher level.
  auto escalated = await(name, [](const v1::Alert& a) { return a.escalation_level() >= 1; });
  ASSERT_TRUE(escalated);
  EXPECT_EQ(escalated->priority(), v1::PRIORITY_HIGH);
  EXPECT_EQ(escalated->device(), monitor);

  // Escalation goes on after a restart, from the persisted level.
  restart();
  auto before = find(name);
  ASSERT_TRUE(before);
  EXPECT_GE(before->escalation_level(), escalated->escalation_level());
  auto later = await(name, [&](const v1::Alert& a) {
    return a.escalation_level() > before->escalation_level();
  });
  ASSERT_TRUE(later);
  EXPECT_GT(later->escalation_level(), before->escalation_level());

  // Acknowledged: escalation stops, also after a restart.
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::AcknowledgeAlertRequest ack;
    ack.set_name(name);
    ack.set_acknowledged_by("nurse-jones");
    ack.set_note("at the bedside");
    v1::Alert acked;
    ASSERT_TRUE(client_->alerts->AcknowledgeAlert(&ctx, ack, &acked).ok());
    EXPECT_EQ(acked.state(), v1::ALERT_STATE_ACKNOWLEDGED);
  }
  auto level_at_ack = find(name)->escalation_level();
  restart();
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto acked = find(name);
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->state(), v1::ALERT_STATE_ACKNOWLEDGED);
  EXPECT_EQ(acked->acknowledged_by(), "nurse-jones");
  EXPECT_EQ(acked->escalation_level(), level_at_ack);

  // Resolved by hand.
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::ResolveAlertRequest req;
    req.set_name(name);
    req.set_resolved_by("dr-who");
    req.set_note("rate controlled");
    v1::Alert resolved;
    ASSERT_TRUE(client_->alerts->ResolveAlert(&ctx, req, &resolved).ok());
    EXPECT_EQ(resolved.state(), v1::ALERT_STATE_RESOLVED);
    EXPECT_EQ(resolved.resolved_by(), "dr-who");
    grpc::ClientContext again;
    api_client::deadline(again);
    EXPECT_EQ(client_->alerts->ResolveAlert(&again, req, &resolved).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }

  // The stream replays the whole story in order, without gaps.
  auto events = replay_all();
  std::vector<v1::AlertEventType> story;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].resume_token(), i + 1);
    if (events[i].alert().name() == name)
      story.push_back(events[i].type());
  }
  ASSERT_GE(story.size(), 5u);
  EXPECT_EQ(story.front(), v1::ALERT_EVENT_TYPE_RAISED);
  EXPECT_EQ(story[1], v1::ALERT_EVENT_TYPE_ESCALATED);
  EXPECT_EQ(story[story.size() - 2], v1::ALERT_EVENT_TYPE_ACKNOWLEDGED);
  EXPECT_EQ(story.back(), v1::ALERT_EVENT_TYPE_RESOLVED);
}

TEST_F(alert_lifecycle_test, silence_stops_escalation_and_bad_requests_name_the_field) {
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::SilenceAlertsRequest req;
    req.set_patient(patient);
    req.set_metric(v1::METRIC_HEART_RATE);
    req.mutable_duration()->set_seconds(5 * 3600);  // over 4 h
    req.set_silenced_by("dr-who");
    v1::SilenceAlertsResponse out;
    auto st = client_->alerts->SilenceAlerts(&ctx, req, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("duration"), std::string::npos) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::SilenceAlertsRequest req;
    req.set_patient("tenants/h1/patients/nobody");
    req.mutable_duration()->set_seconds(60);
    req.set_silenced_by("dr-who");
    v1::SilenceAlertsResponse out;
    EXPECT_EQ(client_->alerts->SilenceAlerts(&ctx, req, &out).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::SilenceAlertsRequest req;
    req.set_patient(patient);
    req.set_metric(v1::METRIC_HEART_RATE);
    req.mutable_duration()->set_seconds(600);
    req.set_silenced_by("dr-who");
    req.set_reason("known tachycardia");
    v1::SilenceAlertsResponse out;
    ASSERT_TRUE(client_->alerts->SilenceAlerts(&ctx, req, &out).ok());
    EXPECT_GT(out.silenced_until().seconds(), now_ms() / 1000 + 590);
  }
  restart();  // the silence is persisted
  auto t = now_ms();
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request(monitor, {{1, t - 6000, v1::METRIC_HEART_RATE, 160},
                                                          {2, t, v1::METRIC_HEART_RATE, 160}}),
                            resp)
                  .ok());
  auto alert = await_event_of(v1::ALERT_KIND_THRESHOLD);
  ASSERT_TRUE(alert);
  EXPECT_TRUE(alert->has_silenced_until());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto now = find(alert->name());
  ASSERT_TRUE(now);
  EXPECT_EQ(now->escalation_level(), 0u);  // silenced: not escalated
  EXPECT_EQ(now->state(), v1::ALERT_STATE_ACTIVE);
}

TEST_F(alert_lifecycle_test, a_device_streaming_unassigned_raises_its_own_alert_resolvable_by_hand) {
  ASSERT_TRUE(client_->create_device("h1", "loose", v1::DEVICE_TYPE_PULSE_OXIMETER, "").ok());
  v1::IngestResponse resp;
  ASSERT_TRUE(client_->send(api_client::request("tenants/h1/devices/loose",
                                                {{1, now_ms(), v1::METRIC_SPO2, 97}}),
                            resp)
                  .ok());
  auto alert = await_event_of(v1::ALERT_KIND_DEVICE_UNASSIGNED);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->device(), "tenants/h1/devices/loose");
  EXPECT_TRUE(alert->patient().empty());
  EXPECT_EQ(alert->priority(), v1::PRIORITY_MEDIUM);
  EXPECT_EQ(alert->name().rfind("tenants/h1/devices/loose/alerts/", 0), 0u) << alert->name();

  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::ResolveAlertRequest req;
  req.set_name(alert->name());
  req.set_resolved_by("ops-1");
  req.set_note("spare oximeter on the charging shelf");
  v1::Alert resolved;
  ASSERT_TRUE(client_->alerts->ResolveAlert(&ctx, req, &resolved).ok());
  EXPECT_EQ(resolved.state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_EQ(resolved.resolved_by(), "ops-1");
}
