#include "services/http/fhir_resources.hpp"

#include <ctime>

#include <fmt/format.h>

namespace healthtwin::services {

namespace {

using json = nlohmann::json;

std::string last_segment(const std::string& name) {
  return name.substr(name.rfind('/') + 1);
}

const char* priority_code(v1::Priority p) {
  switch (p) {
    case v1::PRIORITY_HIGH: return "high";
    case v1::PRIORITY_MEDIUM: return "medium";
    case v1::PRIORITY_LOW: return "low";
    default: return "none";
  }
}

}  // namespace

std::string fhir_instant(int64_t ms) {
  std::time_t s = ms / 1000;
  std::tm tm{};
  gmtime_r(&s, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ((ms % 1000) + 1000) % 1000);
}

json news2_code() {
  return {{"coding", json::array({{{"system", "http://snomed.info/sct"},
                                   {"code", "1104051000000101"},
                                   {"display", "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score"}}})},
          {"text", "NEWS2"}};
}

const char* alert_resource_type(const v1::Alert& a) {
  return a.patient().empty() ? "DetectedIssue" : "Flag";
}

std::string alert_resource_id(const v1::Alert& a) {
  return "alert-" + last_segment(a.name());
}

json alert_resource(const v1::Alert& a, const std::string& tenant) {
  bool resolved = a.state() == v1::ALERT_STATE_RESOLVED;
  json identifier = json::array({{{"system", "urn:healthtwin:" + tenant + ":alert"}, {"value", last_segment(a.name())}}});
  json priority = json::array({{{"url", "urn:healthtwin:fhir:StructureDefinition:alert-priority"},
                                {"valueCode", priority_code(a.priority())}}});
  if (a.patient().empty()) {  // a device's own technical alert
    json d{{"extension", std::move(priority)},
           {"identifier", std::move(identifier)},
           {"status", resolved ? "final" : "preliminary"},
           {"severity", a.priority() == v1::PRIORITY_HIGH ? "high" : a.priority() == v1::PRIORITY_MEDIUM ? "moderate" : "low"},
           {"detail", a.message()}};
    if (!a.device().empty())
      d["implicated"] = json::array({{{"reference", "Device/" + last_segment(a.device())}}});
    if (a.raise_time_ms() > 0)
      d["identifiedDateTime"] = fhir_instant(a.raise_time_ms());
    return d;
  }
  bool technical = a.kind() >= v1::ALERT_KIND_DEVICE_OFFLINE;
  json f{{"extension", std::move(priority)},
         {"identifier", std::move(identifier)},
         {"status", resolved ? "inactive" : "active"},
         {"category", json::array({{{"coding", json::array({{{"system", "http://terminology.hl7.org/CodeSystem/flag-category"},
                                                             {"code", technical ? "safety" : "clinical"}}})}}})},
         {"code", {{"text", a.message()}}},
         {"subject", {{"reference", "Patient/" + last_segment(a.patient())}}}};
  if (a.raise_time_ms() > 0) {
    f["period"] = {{"start", fhir_instant(a.raise_time_ms())}};
    if (resolved && a.resolve_time_ms() >= a.raise_time_ms())
      f["period"]["end"] = fhir_instant(a.resolve_time_ms());
  }
  return f;
}

}  // namespace healthtwin::services
