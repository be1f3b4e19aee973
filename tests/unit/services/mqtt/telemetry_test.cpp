// Topic and payload decoding of MQTT telemetry (docs/mqtt.md).
#include "services/mqtt/telemetry.hpp"

#include <gtest/gtest.h>

using namespace healthtwin;
using namespace healthtwin::mqtt;

namespace {

const std::set<std::string, std::less<>> tenants{"st-mary", "north"};

v1::TelemetryPayload two_readings() {
  v1::TelemetryPayload p;
  p.set_version(1);
  for (uint64_t seq : {41u, 42u}) {
    p.add_sequence(seq);
    p.add_time_ms(1'765'000'000'000 + static_cast<int64_t>(seq) * 1000);
    p.add_metric(v1::METRIC_HEART_RATE);
    p.add_value(70.0 + static_cast<double>(seq));
  }
  return p;
}

}  // namespace

TEST(MqttTopic, NamesTenantAndDevice) {
  payload_error why;
  auto t = parse_topic("healthtwin/st-mary/devices/wear-001/telemetry", tenants, why);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tenant, "st-mary");
  EXPECT_EQ(t->device_name(), "tenants/st-mary/devices/wear-001");
}

TEST(MqttTopic, RefusesOtherShapesTenantsAndDeviceIds) {
  for (const char* topic : {"healthtwin/st-mary/devices/wear-001", "healthtwin/st-mary/devices/wear-001/telemetry/x",
                            "healthtwin/st-mary/patients/wear-001/telemetry", "other/st-mary/devices/a/telemetry",
                            "healthtwin/other/devices/a/telemetry", "healthtwin/st-mary/devices//telemetry",
                            "healthtwin/st-mary/devices/Wear_001/telemetry", ""}) {
    payload_error why;
    EXPECT_FALSE(parse_topic(topic, tenants, why)) << topic;
    EXPECT_EQ(why.field, "topic") << topic;
    EXPECT_FALSE(why.reason.empty());
  }
}

TEST(MqttTopic, QuotesABoundedPrefixOfAHugeTopic) {
  payload_error why;
  std::string topic = "healthtwin/st-mary/devices/" + std::string(100'000, 'a') + "/telemetry";
  EXPECT_FALSE(parse_topic(topic, tenants, why));
  EXPECT_LT(why.reason.size(), 200u);
}

TEST(MqttPayload, ProtobufAndJsonDecodeToTheSameReadings) {
  auto p = two_readings();
  std::string binary = p.SerializeAsString();
  std::string json = R"({"version": 1, "sequence": [41, "42"], "timeMs": [1765000041000, 1765000042000],
                         "metric": ["METRIC_HEART_RATE", "METRIC_HEART_RATE"], "value": [111, 112]})";
  payload_error why;
  auto f1 = format_of(binary, "", why);
  auto f2 = format_of("  \n" + json, "", why);
  ASSERT_TRUE(f1 && f2);
  EXPECT_EQ(*f1, payload_format::protobuf);
  EXPECT_EQ(*f2, payload_format::json);
  auto a = decode_payload(binary, *f1, why);
  auto b = decode_payload(json, *f2, why);
  ASSERT_TRUE(a) << why.reason;
  ASSERT_TRUE(b) << why.reason;
  EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString());
}

TEST(MqttPayload, ContentTypeDecidesWhenGiven) {
  payload_error why;
  EXPECT_EQ(*format_of("{", "application/x-protobuf", why), payload_format::protobuf);
  EXPECT_EQ(*format_of("\x08\x01", "application/json", why), payload_format::json);
  EXPECT_FALSE(format_of("{}", "text/plain", why));
  EXPECT_EQ(why.field, "content_type");
}

TEST(MqttPayload, ErrorsNameTheField) {
  struct bad {
    std::string json;
    std::string field;
  };
  std::vector<bad> cases = {
      {R"({"version": 2, "sequence": [1], "timeMs": [1], "metric": [1], "value": [1]})", "version"},
      {R"({"sequence": [1], "timeMs": [1], "metric": [1], "value": [1]})", "version"},
      {R"({"version": 1})", "sequence"},
      {R"({"version": 1, "sequence": [1, 2], "timeMs": [1], "metric": [1, 1], "value": [1, 1]})", "time_ms"},
      {R"({"version": 1, "sequence": [1], "timeMs": [1], "metric": [1], "value": [1], "quality": [1, 1]})",
       "quality"},
      {R"({"version": 1, "sequense": [1]})", "payload"},
      {R"({"version": 1, "sequence": [1], "timeMs": [1], "metric": ["PULSE"], "value": [1]})", "payload"},
      {R"({"version": 1,)", "payload"},
  };
  for (const auto& c : cases) {
    payload_error why;
    EXPECT_FALSE(decode_payload(c.json, payload_format::json, why)) << c.json;
    EXPECT_EQ(why.field, c.field) << c.json << ": " << why.reason;
    EXPECT_LT(why.reason.size(), 300u);
  }
  payload_error why;
  EXPECT_FALSE(decode_payload("\xff\xff\xff", payload_format::protobuf, why));
  EXPECT_EQ(why.field, "payload");
}

TEST(MqttPayload, RefusesMoreReadingsThanOneIngestRequestTakes) {
  v1::TelemetryPayload p;
  p.set_version(1);
  for (size_t i = 0; i <= max_readings_per_message; ++i) {
    p.add_sequence(i + 1);
    p.add_time_ms(1);
    p.add_metric(v1::METRIC_HEART_RATE);
    p.add_value(1);
  }
  payload_error why;
  EXPECT_FALSE(decode_payload(p.SerializeAsString(), payload_format::protobuf, why));
  EXPECT_EQ(why.field, "sequence");
}

TEST(MqttPayload, BecomesOneDevicesIngestRequest) {
  auto req = to_ingest_request({"st-mary", "wear-001"}, two_readings(), 7);
  EXPECT_EQ(req.batch_id(), 7u);
  ASSERT_EQ(req.devices_size(), 1);
  const auto& d = req.devices(0);
  EXPECT_EQ(d.device(), "tenants/st-mary/devices/wear-001");
  EXPECT_EQ(d.sequence_size(), 2);
  EXPECT_EQ(d.sequence(1), 42u);
  EXPECT_EQ(d.value(0), 111.0);
  EXPECT_EQ(payload_field("devices[0].value[5]"), "value[5]");
}
