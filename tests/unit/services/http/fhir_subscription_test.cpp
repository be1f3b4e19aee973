#include "services/http/fhir_subscription.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace healthtwin;
using namespace healthtwin::services;
using json = nlohmann::json;

namespace {

const std::string backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

json posted() {
  return {{"resourceType", "Subscription"},
          {"status", "requested"},
          {"reason", "nurse call"},
          {"criteria", alerts_topic_url},
          {"_criteria", {{"extension", json::array({{{"url", backport + "backport-filter-criteria"},
                                                     {"valueString", "Flag?ward=ICU&patient=Patient/p-1&priority=medium"}}})}}},
          {"channel", {{"type", "rest-hook"},
                       {"endpoint", "https://receiver.example:8443/notify"},
                       {"payload", "application/fhir+json"},
                       {"_payload", {{"extension", json::array({{{"url", backport + "backport-payload-content"},
                                                                 {"valueCode", "full-resource"}}})}}},
                       {"extension", json::array({{{"url", backport + "backport-heartbeat-period"}, {"valueUnsignedInt", 60}},
                                                  {{"url", backport + "backport-timeout"}, {"valueUnsignedInt", 5}}})},
                       {"header", json::array({"Authorization: Bearer secret-1"})}}}};
}

subscription_spec parsed(const json& j) {
  subscription_spec s;
  auto err = parse_subscription(j.dump(), s);
  EXPECT_FALSE(err) << *err;
  s.tenant = "h1";
  s.id = "0123abcd";
  s.base_url = "https://node/fhir/h1";
  return s;
}

v1::AlertEvent event(v1::AlertKind kind, v1::AlertEventType type, const std::string& patient = "p-1") {
  v1::AlertEvent e;
  e.set_resume_token(41);
  e.set_type(type);
  e.mutable_event_time()->set_seconds(1'700'000'000);
  auto* a = e.mutable_alert();
  a->set_name(patient.empty() ? "tenants/h1/devices/mon-1/alerts/a9" : "tenants/h1/patients/" + patient + "/alerts/a7");
  if (!patient.empty())
    a->set_patient("tenants/h1/patients/" + patient);
  a->set_device("tenants/h1/devices/mon-1");
  a->set_kind(kind);
  a->set_priority(v1::PRIORITY_HIGH);
  a->set_state(type == v1::ALERT_EVENT_TYPE_RESOLVED ? v1::ALERT_STATE_RESOLVED : v1::ALERT_STATE_ACTIVE);
  a->set_value(8);
  a->set_message("NEWS2 8: urgent response");
  a->set_raise_time_ms(1'699'999'000'000);
  return e;
}

json parameters(const json& bundle) {
  json out;
  for (auto& p : bundle["entry"][0]["resource"]["parameter"])
    out[p["name"].get<std::string>()] = p;
  return out;
}

}  // namespace

TEST(fhir_subscription, a_backport_rest_hook_subscription_is_read_with_its_filters_and_channel) {
  auto s = parsed(posted());
  EXPECT_EQ(s.topic, subscription_topic::alerts);
  EXPECT_EQ(s.ward, "ICU");
  EXPECT_EQ(s.patient_id, "p-1");
  EXPECT_EQ(s.min_priority, v1::PRIORITY_MEDIUM);
  EXPECT_EQ(s.endpoint, "https://receiver.example:8443/notify");
  EXPECT_EQ(s.content, payload_content::full_resource);
  EXPECT_EQ(s.heartbeat_s, 60u);
  EXPECT_EQ(s.timeout_s, 5u);
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0], "Authorization: Bearer secret-1");
}

TEST(fhir_subscription, each_bad_field_is_named_and_quoted_only_in_part) {
  struct bad_case {
    const char* field;
    std::function<void(json&)> spoil;
  };
  std::string long_text(5000, 'x');
  std::vector<bad_case> cases{
      {"resourceType", [](json& j) { j["resourceType"] = "Patient"; }},
      {"criteria", [&](json& j) { j["criteria"] = long_text; }},
      {"status", [](json& j) { j["status"] = "off"; }},
      {"end", [](json& j) { j["end"] = "2030-01-01T00:00:00Z"; }},
      {"reason", [](json& j) { j.erase("reason"); }},
      {"_criteria", [](json& j) { j["_criteria"]["extension"][0]["valueString"] = "Observation?ward=ICU"; }},
      {"_criteria", [](json& j) { j["_criteria"]["extension"][0]["valueString"] = "Flag?priority=urgent"; }},
      {"_criteria", [](json& j) { j["_criteria"]["extension"][0]["valueString"] = "Flag?patient=Patient/UPPER"; }},
      {"channel.type", [](json& j) { j["channel"]["type"] = "websocket"; }},
      {"channel.endpoint", [](json& j) { j["channel"]["endpoint"] = "http://receiver/notify"; }},
      {"channel.endpoint", [](json& j) { j["channel"]["endpoint"] = "https:///path"; }},
      {"channel.payload", [](json& j) { j["channel"]["payload"] = "text/xml"; }},
      {"channel._payload", [](json& j) { j["channel"]["_payload"]["extension"][0]["valueCode"] = "all"; }},
      {"channel.header", [](json& j) { j["channel"]["header"] = json::array({"Bad Name: x"}); }},
      {"channel.header", [](json& j) { j["channel"]["header"] = json::array({"X-Ok: line\r\nInjected: 1"}); }},
      {"channel: backport-timeout", [](json& j) { j["channel"]["extension"][1]["valueUnsignedInt"] = 600; }},
      {"channel: backport-heartbeat-period", [](json& j) { j["channel"]["extension"][0]["valueUnsignedInt"] = 1; }},
  };
  for (auto& c : cases) {
    auto j = posted();
    c.spoil(j);
    subscription_spec s;
    auto err = parse_subscription(j.dump(), s);
    ASSERT_TRUE(err) << c.field;
    EXPECT_EQ(err->rfind(c.field, 0), 0u) << *err;
    EXPECT_LT(err->size(), 300u) << *err;
  }
  subscription_spec s;
  EXPECT_TRUE(parse_subscription("{not json", s));
}

TEST(fhir_subscription, the_resource_read_back_hides_header_values_and_reads_as_the_same_subscription) {
  auto s = parsed(posted());
  subscription_progress p;
  p.status = "active";
  auto text = subscription_resource(s, p);
  EXPECT_EQ(text.find("secret-1"), std::string::npos);
  auto r = json::parse(text);
  EXPECT_EQ(r["id"], "0123abcd");
  EXPECT_EQ(r["status"], "active");
  EXPECT_EQ(r["channel"]["header"][0], "Authorization: ***");
  subscription_spec again;
  ASSERT_FALSE(parse_subscription(text, again));
  EXPECT_EQ(again.ward, s.ward);
  EXPECT_EQ(again.patient_id, s.patient_id);
  EXPECT_EQ(again.min_priority, s.min_priority);
  EXPECT_EQ(again.content, s.content);
  EXPECT_EQ(again.heartbeat_s, s.heartbeat_s);
}

TEST(fhir_subscription, the_kept_record_round_trips_and_a_damaged_one_is_refused) {
  auto s = parsed(posted());
  subscription_progress p;
  p.status = "error";
  p.events = 17;
  p.cursors = {{"", 12345}, {"n1", 77}};
  p.pending = true;
  p.pending_member = "n1";
  p.pending_token = 78;
  p.error = "the endpoint answered HTTP 503";
  subscription_spec s2;
  subscription_progress p2;
  std::string why;
  ASSERT_TRUE(parse_subscription_record(subscription_record(s, p), s2, p2, why)) << why;
  EXPECT_EQ(s2.endpoint, s.endpoint);
  EXPECT_EQ(s2.headers, s.headers);
  EXPECT_EQ(s2.base_url, s.base_url);
  EXPECT_EQ(p2.events, 17u);
  EXPECT_EQ(p2.cursors, p.cursors);
  EXPECT_TRUE(p2.pending);
  EXPECT_EQ(p2.pending_member, "n1");
  EXPECT_EQ(p2.pending_token, 78u);
  EXPECT_EQ(p2.error, p.error);
  auto damaged = json::parse(subscription_record(s, p));
  damaged["endpoint"] = "ftp://x";
  EXPECT_FALSE(parse_subscription_record(damaged.dump(), s2, p2, why));
  damaged.erase("endpoint");
  EXPECT_FALSE(parse_subscription_record(damaged.dump(), s2, p2, why));
  EXPECT_FALSE(parse_subscription_record("garbage", s2, p2, why));
}

TEST(fhir_subscription, the_news2_topic_is_news2_raised_updated_and_resolved_only) {
  auto j = posted();
  j["criteria"] = news2_topic_url;
  j["_criteria"]["extension"][0]["valueString"] = "Observation?ward=ICU";
  auto news2 = parsed(j);
  auto alerts = parsed(posted());
  for (auto type : {v1::ALERT_EVENT_TYPE_RAISED, v1::ALERT_EVENT_TYPE_UPDATED, v1::ALERT_EVENT_TYPE_RESOLVED})
    EXPECT_TRUE(notifies(news2, event(v1::ALERT_KIND_NEWS2, type)));
  EXPECT_FALSE(notifies(news2, event(v1::ALERT_KIND_NEWS2, v1::ALERT_EVENT_TYPE_ACKNOWLEDGED)));
  EXPECT_FALSE(notifies(news2, event(v1::ALERT_KIND_THRESHOLD, v1::ALERT_EVENT_TYPE_RAISED)));
  EXPECT_TRUE(notifies(alerts, event(v1::ALERT_KIND_THRESHOLD, v1::ALERT_EVENT_TYPE_ACKNOWLEDGED)));
}

TEST(fhir_subscription, an_event_notification_is_a_history_bundle_numbered_with_its_focus) {
  auto s = parsed(posted());
  subscription_progress p;
  p.status = "active";
  p.events = 6;
  auto b = json::parse(event_bundle(s, p, 7, event(v1::ALERT_KIND_THRESHOLD, v1::ALERT_EVENT_TYPE_RESOLVED), 1'700'000'001'000));
  EXPECT_EQ(b["type"], "history");
  auto params = parameters(b);
  EXPECT_EQ(params["type"]["valueCode"], "event-notification");
  EXPECT_EQ(params["events-since-subscription-start"]["valueString"], "7");
  EXPECT_EQ(params["subscription"]["valueReference"]["reference"], "https://node/fhir/h1/Subscription/0123abcd");
  auto event_part = params["notification-event"]["part"];
  EXPECT_EQ(event_part[0]["valueString"], "7");
  EXPECT_EQ(event_part[2]["valueReference"]["reference"], "https://node/fhir/h1/Flag/alert-a7");
  ASSERT_EQ(b["entry"].size(), 2u);
  auto flag = b["entry"][1]["resource"];
  EXPECT_EQ(flag["resourceType"], "Flag");
  EXPECT_EQ(flag["status"], "inactive");
  EXPECT_EQ(flag["subject"]["reference"], "Patient/p-1");
  EXPECT_EQ(b["entry"][1]["request"]["method"], "PUT");

  s.content = payload_content::id_only;
  b = json::parse(event_bundle(s, p, 7, event(v1::ALERT_KIND_THRESHOLD, v1::ALERT_EVENT_TYPE_RAISED), 0));
  ASSERT_EQ(b["entry"].size(), 2u);
  EXPECT_FALSE(b["entry"][1].contains("resource"));
  EXPECT_EQ(b["entry"][1]["request"]["method"], "POST");
  s.content = payload_content::empty;
  b = json::parse(event_bundle(s, p, 7, event(v1::ALERT_KIND_THRESHOLD, v1::ALERT_EVENT_TYPE_RAISED), 0));
  EXPECT_EQ(b["entry"].size(), 1u);
  EXPECT_EQ(b.dump().find("p-1"), std::string::npos) << "an empty notification named the patient";
}

TEST(fhir_subscription, a_news2_notification_carries_the_score_and_a_device_alert_is_a_detected_issue) {
  auto j = posted();
  j["criteria"] = news2_topic_url;
  j["_criteria"]["extension"][0]["valueString"] = "Observation?ward=ICU";
  auto s = parsed(j);
  subscription_progress p;
  auto b = json::parse(event_bundle(s, p, 1, event(v1::ALERT_KIND_NEWS2, v1::ALERT_EVENT_TYPE_UPDATED), 0));
  ASSERT_EQ(b["entry"].size(), 3u);
  auto o = b["entry"][2]["resource"];
  EXPECT_EQ(o["resourceType"], "Observation");
  EXPECT_EQ(o["code"]["coding"][0]["code"], "1104051000000101");
  EXPECT_EQ(o["valueInteger"], 8);
  EXPECT_EQ(parameters(b)["notification-event"]["part"][3]["name"], "additional-context");

  auto alerts = parsed(posted());
  b = json::parse(event_bundle(alerts, p, 1, event(v1::ALERT_KIND_DEVICE_OFFLINE, v1::ALERT_EVENT_TYPE_RAISED, ""), 0));
  auto d = b["entry"][1]["resource"];
  EXPECT_EQ(d["resourceType"], "DetectedIssue");
  EXPECT_EQ(d["implicated"][0]["reference"], "Device/mon-1");
}

TEST(fhir_subscription, handshake_and_heartbeat_carry_the_count_and_no_event) {
  auto s = parsed(posted());
  auto h = json::parse(handshake_bundle(s, 0));
  EXPECT_EQ(parameters(h)["type"]["valueCode"], "handshake");
  EXPECT_EQ(parameters(h)["events-since-subscription-start"]["valueString"], "0");
  EXPECT_EQ(h["entry"].size(), 1u);
  subscription_progress p;
  p.status = "active";
  p.events = 3;
  auto hb = json::parse(heartbeat_bundle(s, p, 0));
  EXPECT_EQ(parameters(hb)["type"]["valueCode"], "heartbeat");
  EXPECT_EQ(parameters(hb)["events-since-subscription-start"]["valueString"], "3");
  EXPECT_FALSE(parameters(hb).contains("notification-event"));
}
