#include "services/http/fhir_subscription.hpp"

#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"
#include "services/http/fhir_resources.hpp"

namespace healthtwin::services {

namespace {

using json = nlohmann::json;

constexpr const char* backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
const std::string filter_ext = std::string{backport} + "backport-filter-criteria";
const std::string content_ext = std::string{backport} + "backport-payload-content";
const std::string heartbeat_ext = std::string{backport} + "backport-heartbeat-period";
const std::string timeout_ext = std::string{backport} + "backport-timeout";
constexpr size_t max_headers = 8, max_header_bytes = 1024, max_endpoint_bytes = 2048;

std::string bounded(std::string_view s) {
  return models::quoted_input(s);
}

const char* topic_url(subscription_topic t) {
  return t == subscription_topic::news2 ? news2_topic_url : alerts_topic_url;
}

const char* content_code(payload_content c) {
  switch (c) {
    case payload_content::empty: return "empty";
    case payload_content::full_resource: return "full-resource";
    default: return "id-only";
  }
}

std::optional<payload_content> content_of(const std::string& code) {
  if (code == "empty")
    return payload_content::empty;
  if (code == "id-only")
    return payload_content::id_only;
  if (code == "full-resource")
    return payload_content::full_resource;
  return std::nullopt;
}

const char* priority_name(v1::Priority p) {
  switch (p) {
    case v1::PRIORITY_HIGH: return "high";
    case v1::PRIORITY_MEDIUM: return "medium";
    case v1::PRIORITY_LOW: return "low";
    default: return "";
  }
}

// The value of an extension of `holder` with this url and value key.
const json* extension(const json& holder, const std::string& url, const char* value_key) {
  if (!holder.is_object() || !holder.contains("extension") || !holder["extension"].is_array())
    return nullptr;
  for (auto& e : holder["extension"])
    if (e.is_object() && e.value("url", "") == url && e.contains(value_key))
      return &e[value_key];
  return nullptr;
}

// "Flag?ward=icu&patient=Patient/p1&priority=high" into the spec's filters.
std::optional<std::string> parse_filter(const std::string& text, subscription_spec& out) {
  const char* resource = out.topic == subscription_topic::news2 ? "Observation" : "Flag";
  auto q = text.find('?');
  if (text.substr(0, q) != resource)
    return fmt::format("_criteria: filter criteria of topic {} start \"{}?\", not {}", topic_url(out.topic),
                       resource, bounded(text));
  std::string_view rest = q == std::string::npos ? std::string_view{} : std::string_view{text}.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = pair.find('=');
    auto key = pair.substr(0, eq);
    auto value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (key == "ward") {
      if (value.empty() || value.size() > 64)
        return "_criteria: ward: 1-64 characters, not " + bounded(value);
      out.ward = std::string{value};
    } else if (key == "patient") {
      auto id = value.starts_with("Patient/") ? value.substr(8) : value;
      if (!models::is_valid_id(id))
        return "_criteria: patient: Patient/{id} with an id of 1-63 characters of [a-z0-9-], not " + bounded(value);
      out.patient_id = std::string{id};
    } else if (key == "priority") {
      if (value == "high")
        out.min_priority = v1::PRIORITY_HIGH;
      else if (value == "medium")
        out.min_priority = v1::PRIORITY_MEDIUM;
      else if (value == "low")
        out.min_priority = v1::PRIORITY_LOW;
      else
        return "_criteria: priority: high, medium or low (the least wanted), not " + bounded(value);
    } else {
      return "_criteria: filters are ward, patient and priority, not " + bounded(key);
    }
  }
  return std::nullopt;
}

std::optional<std::string> parse_channel(const json& c, subscription_spec& out) {
  if (!c.is_object())
    return std::string{"channel: required, an object"};
  if (c.value("type", "") != "rest-hook")
    return "channel.type: only rest-hook, not " + bounded(c.contains("type") ? c["type"].dump() : "(none)");
  auto endpoint = c.contains("endpoint") && c["endpoint"].is_string() ? c["endpoint"].get<std::string>() : "";
  auto host_start = std::string_view{"https://"}.size();
  if (!endpoint.starts_with("https://") || endpoint.size() > max_endpoint_bytes || endpoint.size() <= host_start ||
      endpoint[host_start] == '/' || endpoint.find_first_of(" \t\r\n#") != std::string::npos)
    return "channel.endpoint: an https URL of at most 2048 characters, not " + bounded(endpoint);
  out.endpoint = endpoint;
  if (c.contains("payload") && c["payload"] != "application/fhir+json" && c["payload"] != "application/json")
    return "channel.payload: application/fhir+json, not " + bounded(c["payload"].dump());
  if (c.contains("_payload"))
    if (auto* code = extension(c["_payload"], content_ext, "valueCode")) {
      auto v = code->is_string() ? content_of(code->get<std::string>()) : std::nullopt;
      if (!v)
        return "channel._payload: backport-payload-content is empty, id-only or full-resource, not " +
               bounded(code->dump());
      out.content = *v;
    }
  if (c.contains("header")) {
    if (!c["header"].is_array() || c["header"].size() > max_headers)
      return std::string{"channel.header: at most 8 strings \"Name: value\""};
    for (auto& h : c["header"]) {
      auto text = h.is_string() ? h.get<std::string>() : "";
      auto colon = text.find(':');
      bool ok = colon != std::string::npos && colon > 0 && text.size() <= max_header_bytes;
      for (size_t i = 0; ok && i < text.size(); ++i) {
        auto ch = static_cast<unsigned char>(text[i]);
        ok = i < colon ? (std::isalnum(ch) || ch == '-' || ch == '_') : (ch >= 0x20 && ch != 0x7f);
      }
      if (!ok)
        return "channel.header: each \"Name: value\" (a token name, no control characters, at most 1024 bytes), not " +
               bounded(text);
      out.headers.push_back(text);
    }
  }
  for (auto [url, into, low, high] : {std::tuple{&heartbeat_ext, &out.heartbeat_s, 10u, 86'400u},
                                      std::tuple{&timeout_ext, &out.timeout_s, 1u, 60u}}) {
    if (auto* v = extension(c, *url, "valueUnsignedInt")) {
      if (!v->is_number_unsigned() || v->get<uint64_t>() < low || v->get<uint64_t>() > high)
        return fmt::format("channel: {} is {}..{} seconds, not {}", url->substr(url->rfind('/') + 1), low, high,
                           bounded(v->dump()));
      *into = v->get<uint32_t>();
    }
  }
  return std::nullopt;
}

json reference(const subscription_spec& s, const std::string& relative) {
  return {{"reference", s.base_url + "/" + relative}};
}

json status_parameters(const subscription_spec& s, const subscription_progress& p, const char* type,
                       const json& event_part) {
  json params = json::array({{{"name", "subscription"}, {"valueReference", reference(s, "Subscription/" + s.id)}},
                             {{"name", "topic"}, {"valueCanonical", topic_url(s.topic)}},
                             {{"name", "status"}, {"valueCode", p.status}},
                             {{"name", "type"}, {"valueCode", type}},
                             {{"name", "events-since-subscription-start"}, {"valueString", std::to_string(p.events)}}});
  if (!event_part.is_null())
    params.push_back({{"name", "notification-event"}, {"part", event_part}});
  if (p.status == "error" && !p.error.empty())
    params.push_back({{"name", "error"}, {"valueCodeableConcept", {{"text", p.error}}}});
  return {{"resourceType", "Parameters"},
          {"meta", {{"profile", json::array({std::string{backport} + "backport-subscription-status-r4"})}}},
          {"parameter", std::move(params)}};
}

json bundle(const subscription_spec& s, json status, json more_entries, int64_t now_ms) {
  json entries = json::array({{{"fullUrl", s.base_url + "/Subscription/" + s.id + "/$status"},
                               {"resource", std::move(status)},
                               {"request", {{"method", "GET"}, {"url", "Subscription/" + s.id + "/$status"}}},
                               {"response", {{"status", "200"}}}}});
  for (auto& e : more_entries)
    entries.push_back(std::move(e));
  return {{"resourceType", "Bundle"},
          {"meta", {{"profile", json::array({std::string{backport} + "backport-subscription-notification-r4"})}}},
          {"type", "history"},
          {"timestamp", fhir_instant(now_ms)},
          {"entry", std::move(entries)}};
}

}  // namespace

std::optional<std::string> parse_subscription(const std::string& json_text, subscription_spec& out) {
  auto doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return std::string{"the body: a JSON Subscription resource"};
  if (doc.value("resourceType", "") != "Subscription")
    return "resourceType: Subscription, not " + bounded(doc.value("resourceType", std::string{"(none)"}));
  if (doc.contains("status") && doc["status"] != "requested" && doc["status"] != "active")
    return "status: requested, not " + bounded(doc["status"].dump());
  if (doc.contains("end"))
    return std::string{"end: not supported (delete the subscription to end it)"};
  auto criteria = doc.contains("criteria") && doc["criteria"].is_string() ? doc["criteria"].get<std::string>() : "";
  if (criteria == alerts_topic_url)
    out.topic = subscription_topic::alerts;
  else if (criteria == news2_topic_url)
    out.topic = subscription_topic::news2;
  else
    return fmt::format("criteria: the topic, {} or {}, not {}", alerts_topic_url, news2_topic_url, bounded(criteria));
  if (doc.contains("_criteria") && doc["_criteria"].is_object() && doc["_criteria"].contains("extension")) {
    for (auto& e : doc["_criteria"]["extension"]) {
      if (!e.is_object() || e.value("url", "") != filter_ext)
        continue;
      auto text = e.contains("valueString") && e["valueString"].is_string() ? e["valueString"].get<std::string>() : "";
      if (auto bad = parse_filter(text, out))
        return bad;
    }
  }
  auto reason = doc.contains("reason") && doc["reason"].is_string() ? doc["reason"].get<std::string>() : "";
  if (reason.empty() || reason.size() > 1000)
    return std::string{"reason: required, at most 1000 characters"};
  out.reason = reason;
  return parse_channel(doc.contains("channel") ? doc["channel"] : json{}, out);
}

std::string subscription_resource(const subscription_spec& s, const subscription_progress& p) {
  json filters = json::array();
  std::string f;
  auto add = [&](const std::string& kv) { f += (f.empty() ? "?" : "&") + kv; };
  if (!s.ward.empty())
    add("ward=" + s.ward);
  if (!s.patient_id.empty())
    add("patient=Patient/" + s.patient_id);
  if (s.min_priority != v1::PRIORITY_UNSPECIFIED)
    add(std::string{"priority="} + priority_name(s.min_priority));
  json channel{{"type", "rest-hook"},
               {"endpoint", s.endpoint},
               {"payload", "application/fhir+json"},
               {"_payload", {{"extension", json::array({{{"url", content_ext}, {"valueCode", content_code(s.content)}}})}}}};
  json channel_ext = json::array({{{"url", timeout_ext}, {"valueUnsignedInt", s.timeout_s}}});
  if (s.heartbeat_s > 0)
    channel_ext.push_back({{"url", heartbeat_ext}, {"valueUnsignedInt", s.heartbeat_s}});
  channel["extension"] = std::move(channel_ext);
  if (!s.headers.empty()) {
    json masked = json::array();
    for (auto& h : s.headers)
      masked.push_back(h.substr(0, h.find(':')) + ": ***");
    channel["header"] = std::move(masked);
  }
  json r{{"resourceType", "Subscription"},
         {"id", s.id},
         {"meta", {{"profile", json::array({std::string{backport} + "backport-subscription"})}}},
         {"status", p.status},
         {"reason", s.reason},
         {"criteria", topic_url(s.topic)},
         {"channel", std::move(channel)}};
  if (!f.empty())
    r["_criteria"] = {{"extension", json::array({{{"url", filter_ext},
                                                  {"valueString", (s.topic == subscription_topic::news2 ? "Observation" : "Flag") + f}}})}};
  if (p.status == "error" && !p.error.empty())
    r["error"] = p.error;
  return r.dump();
}

std::string subscription_record(const subscription_spec& s, const subscription_progress& p) {
  json r{{"v", 1},
         {"tenant", s.tenant},
         {"id", s.id},
         {"topic", s.topic == subscription_topic::news2 ? "news2" : "alerts"},
         {"ward", s.ward},
         {"patient", s.patient_id},
         {"min_priority", static_cast<int>(s.min_priority)},
         {"endpoint", s.endpoint},
         {"headers", s.headers},
         {"content", content_code(s.content)},
         {"heartbeat_s", s.heartbeat_s},
         {"timeout_s", s.timeout_s},
         {"reason", s.reason},
         {"base_url", s.base_url},
         {"status", p.status},
         {"events", p.events},
         {"cursors", p.cursors},
         {"pending", p.pending},
         {"pending_member", p.pending_member},
         {"pending_token", p.pending_token},
         {"error", p.error}};
  return r.dump();
}

bool parse_subscription_record(const std::string& bytes, subscription_spec& s, subscription_progress& p,
                               std::string& why) {
  auto r = json::parse(bytes, nullptr, false);
  if (r.is_discarded() || !r.is_object() || r.value("v", 0) != 1) {
    why = "not a version-1 subscription record";
    return false;
  }
  try {
    s.tenant = r.at("tenant").get<std::string>();
    s.id = r.at("id").get<std::string>();
    s.topic = r.at("topic").get<std::string>() == "news2" ? subscription_topic::news2 : subscription_topic::alerts;
    s.ward = r.at("ward").get<std::string>();
    s.patient_id = r.at("patient").get<std::string>();
    s.min_priority = static_cast<v1::Priority>(r.at("min_priority").get<int>());
    s.endpoint = r.at("endpoint").get<std::string>();
    s.headers = r.at("headers").get<std::vector<std::string>>();
    auto content = content_of(r.at("content").get<std::string>());
    s.heartbeat_s = r.at("heartbeat_s").get<uint32_t>();
    s.timeout_s = r.at("timeout_s").get<uint32_t>();
    s.reason = r.at("reason").get<std::string>();
    s.base_url = r.at("base_url").get<std::string>();
    p.status = r.at("status").get<std::string>();
    p.events = r.at("events").get<uint64_t>();
    p.cursors = r.at("cursors").get<std::map<std::string, uint64_t>>();
    p.pending = r.at("pending").get<bool>();
    p.pending_member = r.at("pending_member").get<std::string>();
    p.pending_token = r.at("pending_token").get<uint64_t>();
    p.error = r.at("error").get<std::string>();
    if (!content || !models::is_valid_id(s.tenant) || s.id.empty() || !s.endpoint.starts_with("https://") ||
        !v1::Priority_IsValid(s.min_priority) || s.timeout_s == 0 || s.timeout_s > 60) {
      why = "a field out of range";
      return false;
    }
    s.content = *content;
  } catch (const json::exception& e) {
    why = std::string{"a field is missing or of another type: "} + e.what();
    return false;
  }
  return true;
}

bool notifies(const subscription_spec& s, const v1::AlertEvent& e) {
  if (s.topic == subscription_topic::alerts)
    return true;
  return e.alert().kind() == v1::ALERT_KIND_NEWS2 &&
         (e.type() == v1::ALERT_EVENT_TYPE_RAISED || e.type() == v1::ALERT_EVENT_TYPE_UPDATED ||
          e.type() == v1::ALERT_EVENT_TYPE_RESOLVED);
}

std::string subscription_status(const subscription_spec& s, const subscription_progress& p) {
  return status_parameters(s, p, "query-status", nullptr).dump();
}

std::string handshake_bundle(const subscription_spec& s, int64_t now_ms) {
  subscription_progress p;
  p.status = "requested";
  return bundle(s, status_parameters(s, p, "handshake", nullptr), json::array(), now_ms).dump();
}

std::string heartbeat_bundle(const subscription_spec& s, const subscription_progress& p, int64_t now_ms) {
  return bundle(s, status_parameters(s, p, "heartbeat", nullptr), json::array(), now_ms).dump();
}

std::string event_bundle(const subscription_spec& s, const subscription_progress& p, uint64_t event_number,
                         const v1::AlertEvent& e, int64_t now_ms) {
  auto& a = e.alert();
  auto focus = std::string{alert_resource_type(a)} + "/" + alert_resource_id(a);
  int64_t at = e.has_event_time() ? e.event_time().seconds() * 1000 + e.event_time().nanos() / 1'000'000 : now_ms;
  json part = json::array({{{"name", "event-number"}, {"valueString", std::to_string(event_number)}},
                           {{"name", "timestamp"}, {"valueInstant", fhir_instant(at)}}});
  if (s.content != payload_content::empty)
    part.push_back({{"name", "focus"}, {"valueReference", reference(s, focus)}});
  // NEWS2 raised or updated: the score now, as an Observation beside the Flag.
  bool with_score = s.topic == subscription_topic::news2 && e.type() != v1::ALERT_EVENT_TYPE_RESOLVED;
  auto observation = fmt::format("Observation/news2-{}-{}", alert_resource_id(a).substr(6), e.resume_token());
  if (with_score && s.content != payload_content::empty)
    part.push_back({{"name", "additional-context"}, {"valueReference", reference(s, observation)}});
  subscription_progress now = p;
  now.events = event_number;
  json entries = json::array();
  if (s.content != payload_content::empty) {
    bool created = e.type() == v1::ALERT_EVENT_TYPE_RAISED;
    auto entry = [&](const std::string& relative, json resource) {
      json x{{"fullUrl", s.base_url + "/" + relative},
             {"request", {{"method", created ? "POST" : "PUT"}, {"url", relative}}},
             {"response", {{"status", created ? "201" : "200"}}}};
      if (s.content == payload_content::full_resource)
        x["resource"] = std::move(resource);
      entries.push_back(std::move(x));
    };
    auto r = alert_resource(a, s.tenant);
    r["resourceType"] = alert_resource_type(a);
    r["id"] = alert_resource_id(a);
    entry(focus, std::move(r));
    if (with_score) {
      json o{{"resourceType", "Observation"},
             {"id", observation.substr(12)},
             {"status", "final"},
             {"category", json::array({{{"coding", json::array({{{"system", "http://terminology.hl7.org/CodeSystem/observation-category"},
                                                                 {"code", "survey"}}})}}})},
             {"code", news2_code()},
             {"subject", {{"reference", "Patient/" + a.patient().substr(a.patient().rfind('/') + 1)}}},
             {"effectiveDateTime", fhir_instant(at)},
             {"valueInteger", static_cast<int>(a.value())}};
      created = true;
      entry(observation, std::move(o));
    }
  }
  return bundle(s, status_parameters(s, now, "event-notification", part), std::move(entries), now_ms).dump();
}

}  // namespace healthtwin::services
