// The bridge's decisions, driven with a fake node and broker: stored,
// dead-lettered with the reason, retried while the node cannot take it,
// abandoned (not acknowledged) when stopping. No sleeping: waits are counted.
#include "services/mqtt/telemetry_bridge.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "healthtwin/v1/telemetry.pb.h"
#include "services/mqtt/device_commands.hpp"

using namespace healthtwin;
using namespace healthtwin::mqtt;

namespace {

constexpr const char* topic = "healthtwin/st-mary/devices/wear-001/telemetry";

std::string payload(std::vector<uint64_t> seqs) {
  v1::TelemetryPayload p;
  p.set_version(1);
  for (auto s : seqs) {
    p.add_sequence(s);
    p.add_time_ms(1'765'000'000'000);
    p.add_metric(v1::METRIC_HEART_RATE);
    p.add_value(80);
  }
  return p.SerializeAsString();
}

/// A node answering from a script, a broker taking dead letters, a clock.
struct fixture {
  std::vector<std::function<grpc::Status(const v1::IngestRequest&, v1::IngestResponse&)>> answers;
  std::vector<v1::IngestRequest> calls;
  std::vector<std::pair<std::string, nlohmann::json>> dead_letters;
  int dead_letter_failures = 0;
  std::vector<std::chrono::milliseconds> waits;
  bool stopping = false;

  telemetry_bridge make() {
    telemetry_bridge::settings s;
    s.tenants = {"st-mary"};
    return telemetry_bridge{
        s,
        [this](const v1::IngestRequest& req, v1::IngestResponse& resp) {
          calls.push_back(req);
          auto i = std::min(calls.size(), answers.size()) - 1;
          return answers.at(i)(req, resp);
        },
        [this](const std::string& t, const std::string& body) {
          if (dead_letter_failures > 0) {
            --dead_letter_failures;
            return false;
          }
          dead_letters.emplace_back(t, nlohmann::json::parse(body));
          return true;
        },
        [this](std::chrono::milliseconds d) {
          waits.push_back(d);
          return !stopping;
        }};
  }
};

grpc::Status accept_all(const v1::IngestRequest& req, v1::IngestResponse& resp) {
  uint32_t n = 0;
  for (const auto& d : req.devices())
    n += static_cast<uint32_t>(d.sequence_size());
  resp.set_accepted(n);
  return grpc::Status::OK;
}

grpc::Status unavailable(const v1::IngestRequest&, v1::IngestResponse&) {
  return {grpc::StatusCode::UNAVAILABLE, "node down"};
}

}  // namespace

TEST(TelemetryBridge, StoresAMessageAsOneDevicesReadings) {
  fixture f;
  f.answers = {accept_all};
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, payload({1, 2, 3}), ""}), outcome::stored);
  ASSERT_EQ(f.calls.size(), 1u);
  EXPECT_EQ(f.calls[0].devices(0).device(), "tenants/st-mary/devices/wear-001");
  EXPECT_EQ(b.stats().readings.load(), 3u);
  EXPECT_TRUE(f.dead_letters.empty());
}

TEST(TelemetryBridge, ARedeliveryTheNodeCallsDuplicateIsStoredNotDeadLettered) {
  fixture f;
  f.answers = {[](const v1::IngestRequest&, v1::IngestResponse& resp) {
    for (uint32_t i = 0; i < 2; ++i) {
      auto* r = resp.add_rejections();
      r->set_index(i);
      r->set_reason(v1::REJECTION_REASON_DUPLICATE);
    }
    return grpc::Status::OK;
  }};
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, payload({1, 2}), ""}), outcome::stored);
  EXPECT_EQ(b.stats().duplicates.load(), 1u);
  EXPECT_TRUE(f.dead_letters.empty());
}

TEST(TelemetryBridge, RetriesWhileTheNodeIsUnavailableWithGrowingBoundedBackoff) {
  fixture f;
  f.answers = std::vector<decltype(f.answers)::value_type>(12, unavailable);
  f.answers.push_back(accept_all);
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, payload({1}), ""}), outcome::stored);
  EXPECT_EQ(f.calls.size(), 13u);
  ASSERT_EQ(f.waits.size(), 12u);
  EXPECT_EQ(f.waits[0], std::chrono::milliseconds(100));
  EXPECT_EQ(f.waits[1], std::chrono::milliseconds(200));
  EXPECT_EQ(f.waits.back(), std::chrono::milliseconds(5000));
  // Every attempt carries the same sequence numbers: a resend is harmless.
  EXPECT_EQ(f.calls.front().SerializeAsString(), f.calls.back().SerializeAsString());
}

TEST(TelemetryBridge, ReadingsOfAnUnreachableMemberAreResentWhole) {
  fixture f;
  f.answers = {[](const v1::IngestRequest&, v1::IngestResponse& resp) {
                 resp.set_accepted(1);
                 auto* r = resp.add_rejections();
                 r->set_index(1);
                 r->set_reason(v1::REJECTION_REASON_UNAVAILABLE);
                 return grpc::Status::OK;
               },
               accept_all};
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, payload({1, 2}), ""}), outcome::stored);
  EXPECT_EQ(f.calls.size(), 2u);
}

TEST(TelemetryBridge, StoppingAbandonsTheMessageSoItIsNotAcknowledged) {
  fixture f;
  f.answers = {unavailable};
  f.stopping = true;
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, payload({1}), ""}), outcome::abandoned);
  EXPECT_TRUE(f.dead_letters.empty());
}

TEST(TelemetryBridge, AnUnreadablePayloadIsDeadLetteredWithFieldAndOriginal) {
  fixture f;
  f.answers = {accept_all};
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, R"({"version": 3})", "application/json"}), outcome::dead_lettered);
  EXPECT_TRUE(f.calls.empty());
  ASSERT_EQ(f.dead_letters.size(), 1u);
  const auto& [t, body] = f.dead_letters[0];
  EXPECT_EQ(t, "healthtwin/st-mary/deadletter");
  EXPECT_EQ(body["topic"], topic);
  EXPECT_EQ(body["errors"][0]["field"], "version");
  EXPECT_EQ(body["content_type"], "application/json");
  EXPECT_EQ(body["payload_base64"], "eyJ2ZXJzaW9uIjogM30=");  // {"version": 3}
}

TEST(TelemetryBridge, RefusedReadingsAreDeadLetteredAndTheRestStored) {
  fixture f;
  f.answers = {[](const v1::IngestRequest&, v1::IngestResponse& resp) {
    resp.set_accepted(1);
    auto* r = resp.add_rejections();
    r->set_index(1);
    r->set_field("devices[0].value[1]");
    r->set_reason(v1::REJECTION_REASON_OUT_OF_RANGE);
    r->set_description("value 900 is outside 0..300");
    return grpc::Status::OK;
  }};
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, payload({1, 2}), ""}), outcome::dead_lettered);
  ASSERT_EQ(f.dead_letters.size(), 1u);
  const auto& errors = f.dead_letters[0].second["errors"];
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["field"], "value[1]");
  EXPECT_EQ(errors[0]["reason"], "REJECTION_REASON_OUT_OF_RANGE");
  EXPECT_EQ(b.stats().readings.load(), 1u);
}

TEST(TelemetryBridge, ARequestTheNodeRefusesWholeIsDeadLetteredNotRetried) {
  fixture f;
  f.answers = {[](const v1::IngestRequest&, v1::IngestResponse&) {
    return grpc::Status{grpc::StatusCode::INVALID_ARGUMENT, "devices[0].sequence[0]: 0"};
  }};
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, payload({1}), ""}), outcome::dead_lettered);
  EXPECT_EQ(f.calls.size(), 1u);
  EXPECT_TRUE(f.waits.empty());
}

TEST(TelemetryBridge, ADeadLetterTheBrokerDidNotConfirmIsRetriedBeforeAcknowledging) {
  fixture f;
  f.dead_letter_failures = 2;
  auto b = f.make();
  EXPECT_EQ(b.handle({topic, "{", ""}), outcome::dead_lettered);
  EXPECT_EQ(f.waits.size(), 2u);
  EXPECT_EQ(f.dead_letters.size(), 1u);

  fixture g;
  g.dead_letter_failures = 1;
  g.stopping = true;
  auto c = g.make();
  EXPECT_EQ(c.handle({topic, "{", ""}), outcome::abandoned);
}

TEST(TelemetryBridge, AnotherTenantsTopicIsDeadLetteredToTheBridgesOwnTopic) {
  fixture f;
  auto b = f.make();
  EXPECT_EQ(b.handle({"healthtwin/elsewhere/devices/a/telemetry", payload({1}), ""}), outcome::dead_lettered);
  EXPECT_EQ(f.dead_letters.at(0).first, "healthtwin/deadletter");
  EXPECT_EQ(b.dead_letter_topic("healthtwin/st-mary/devices/x/telemetry"), "healthtwin/st-mary/deadletter");
}

TEST(TelemetryBridge, OnlyCallerCausedStatusesAreFinal) {
  EXPECT_FALSE(retryable(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_TRUE(retryable(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(retryable(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_TRUE(retryable(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_TRUE(retryable(grpc::StatusCode::PERMISSION_DENIED));
}

TEST(TelemetryBridge, ABatchGoesToTheNodeInOneRequestInItsOrder) {
  fixture f;
  f.answers = {[](const v1::IngestRequest& req, v1::IngestResponse& resp) {
    resp.set_accepted(4);
    auto* r = resp.add_rejections();  // reading 0 of the request's second device entry
    r->set_index(2);
    r->set_field("devices[1].value[0]");
    r->set_reason(v1::REJECTION_REASON_OUT_OF_RANGE);
    EXPECT_EQ(req.devices_size(), 3);
    return grpc::Status::OK;
  }};
  auto b = f.make();
  auto m1 = payload({1, 2}), m2 = payload({9}), m3 = payload({3, 4});
  std::vector<delivery> batch = {{topic, m1, ""},
                                 {"healthtwin/st-mary/devices/wear-002/telemetry", m2, ""},
                                 {topic, "not a payload", "application/json"},
                                 {topic, m3, ""}};
  EXPECT_TRUE(b.handle(batch));
  ASSERT_EQ(f.calls.size(), 1u);
  const auto& req = f.calls[0];
  EXPECT_EQ(req.devices(0).sequence(0), 1u);
  EXPECT_EQ(req.devices(1).device(), "tenants/st-mary/devices/wear-002");
  EXPECT_EQ(req.devices(2).sequence(1), 4u);
  // The unreadable message and the one with the refused reading, in order.
  ASSERT_EQ(f.dead_letters.size(), 2u);
  EXPECT_EQ(f.dead_letters[0].second["topic"], "healthtwin/st-mary/devices/wear-002/telemetry");
  EXPECT_EQ(f.dead_letters[0].second["errors"][0]["field"], "value[0]");
  EXPECT_EQ(f.dead_letters[1].second["errors"][0]["field"], "payload");
  EXPECT_EQ(b.stats().stored.load(), 2u);
}

TEST(TelemetryBridge, ABatchOverTheRequestLimitIsSentInOrderedRequests) {
  fixture f;
  f.answers = {accept_all};
  auto b = f.make();
  std::vector<std::string> payloads;
  for (uint64_t m = 0; m < 3; ++m) {
    std::vector<uint64_t> seqs;
    for (uint64_t i = 1; i <= 4'000; ++i)
      seqs.push_back(m * 4'000 + i);
    payloads.push_back(payload(seqs));
  }
  std::vector<delivery> batch;
  for (const auto& p : payloads)
    batch.push_back({topic, p, ""});
  EXPECT_TRUE(b.handle(batch));
  ASSERT_EQ(f.calls.size(), 2u);  // 8,000 + 4,000 readings
  EXPECT_EQ(f.calls[0].devices_size(), 2);
  EXPECT_EQ(f.calls[1].devices(0).sequence(0), 8'001u);
  EXPECT_EQ(b.stats().readings.load(), 12'000u);
}

TEST(TelemetryBridge, ARequestRefusedWholeIsRetriedMessageByMessageToFindTheCulprit) {
  fixture f;
  f.answers = {[](const v1::IngestRequest& req, v1::IngestResponse& resp) {
    for (const auto& d : req.devices())
      if (d.sequence(0) == 7)
        return grpc::Status{grpc::StatusCode::INVALID_ARGUMENT, "devices[0].sequence: bad"};
    return accept_all(req, resp);
  }};
  auto b = f.make();
  auto good = payload({1}), bad = payload({7}), also_good = payload({8});
  std::vector<delivery> batch = {{topic, good, ""}, {topic, bad, ""}, {topic, also_good, ""}};
  EXPECT_TRUE(b.handle(batch));
  EXPECT_EQ(f.calls.size(), 4u);  // together, then each alone
  ASSERT_EQ(f.dead_letters.size(), 1u);
  EXPECT_EQ(f.dead_letters[0].second["payload_base64"].get<std::string>().empty(), false);
  EXPECT_EQ(b.stats().stored.load(), 2u);
}

TEST(TelemetryBridge, StoppingDuringABatchAcknowledgesNoneOfIt) {
  fixture f;
  f.answers = {unavailable};
  f.stopping = true;
  auto b = f.make();
  auto m1 = payload({1}), m2 = payload({2});
  std::vector<delivery> batch = {{topic, m1, ""}, {topic, m2, ""}};
  EXPECT_FALSE(b.handle(batch));
}

TEST(TelemetryBridge, ReportedStatesGoToTheShadowInOrderWithReadings) {
  fixture f;
  f.answers = {accept_all};
  auto b = f.make();
  std::vector<std::string> order;
  std::vector<std::pair<std::string, std::string>> commands_published;
  device_commands commands{{},
                           [&](const std::string& t, const std::string& body) {
                             commands_published.emplace_back(t, body);
                             return true;
                           },
                           [](const std::string&, v1::Device&) { return grpc::Status::OK; },
                           [] { return int64_t{0}; }};
  b.serve_device_state(
      [&](const v1::ReportDeviceStateRequest& req, v1::Device& out) {
        order.push_back("report " + req.reported().firmware());
        out.set_name(req.device());
        out.mutable_desired()->set_version(2);
        out.mutable_desired()->set_firmware("2.0.0");
        return grpc::Status::OK;
      },
      &commands);
  auto m1 = payload({1}), m3 = payload({2});
  std::string state = R"({"firmware": "1.0.0", "settings": {"sample_rate_hz": "1"}, "version": "7"})";
  std::vector<delivery> batch = {
      {topic, m1, ""}, {"healthtwin/st-mary/devices/wear-001/reported", state, ""}, {topic, m3, ""}};
  EXPECT_TRUE(b.handle(batch));
  ASSERT_EQ(f.calls.size(), 2u);  // the state splits the readings into two requests, in order
  EXPECT_EQ(f.calls[0].devices(0).sequence(0), 1u);
  EXPECT_EQ(f.calls[1].devices(0).sequence(0), 2u);
  EXPECT_EQ(order, std::vector<std::string>{"report 1.0.0"});
  ASSERT_EQ(commands_published.size(), 1u);  // the node wants 2.0.0: told at once
  EXPECT_EQ(commands_published[0].first, "healthtwin/st-mary/devices/wear-001/commands");
  EXPECT_EQ(b.stats().states.load(), 1u);
}

TEST(TelemetryBridge, AReportedStateTheNodeRefusesIsDeadLetteredWithTheReason) {
  fixture f;
  auto b = f.make();
  b.serve_device_state(
      [](const v1::ReportDeviceStateRequest&, v1::Device&) {
        return grpc::Status{grpc::StatusCode::INVALID_ARGUMENT, "reported.settings: name 'A B' is not allowed"};
      },
      nullptr);
  EXPECT_EQ(b.handle({"healthtwin/st-mary/devices/wear-001/reported", R"({"settings": {"A B": "1"}})", ""}),
            outcome::dead_lettered);
  ASSERT_EQ(f.dead_letters.size(), 1u);
  EXPECT_EQ(f.dead_letters[0].second["errors"][0]["reason"], "INVALID_ARGUMENT");
  EXPECT_EQ(b.handle({"healthtwin/st-mary/devices/wear-001/reported", "{\"firmwre\": 1}", ""}),
            outcome::dead_lettered);
}

TEST(TelemetryBridge, WithoutAShadowReportedStatesAreDeadLettered) {
  fixture f;
  auto b = f.make();
  EXPECT_EQ(b.handle({"healthtwin/st-mary/devices/wear-001/reported", "{}", ""}), outcome::dead_lettered);
  EXPECT_EQ(f.dead_letters.at(0).second["errors"][0]["field"], "topic");
}
