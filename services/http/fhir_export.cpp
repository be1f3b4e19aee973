#include "services/http/fhir_export.hpp"

#include <ctime>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "actors/models/quoted.hpp"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "healthtwin/v1/twin.grpc.pb.h"
#include "actors/models/wall_clock.hpp"
#include "services/http/fhir_resources.hpp"
#include "services/logging/json_log.hpp"

namespace healthtwin::services {

namespace {

using json = nlohmann::json;

const char* const loinc = "http://loinc.org";
const char* const ucum = "http://unitsofmeasure.org";

/// A vital sign as the FHIR vital-signs profile codes it.
struct vital_code {
  v1::Metric metric;
  const char* id_prefix;
  const char* code;
  const char* display;
  const char* unit;  // UCUM
};

const vital_code vitals[] = {
    {v1::METRIC_HEART_RATE, "hr", "8867-4", "Heart rate", "/min"},
    {v1::METRIC_RESPIRATION_RATE, "rr", "9279-1", "Respiratory rate", "/min"},
    {v1::METRIC_SPO2, "spo2", "2708-6", "Oxygen saturation in Arterial blood", "%"},
    {v1::METRIC_TEMPERATURE, "temp", "8310-5", "Body temperature", "Cel"},
    {v1::METRIC_MEAN_ARTERIAL_PRESSURE, "map", "8478-0", "Mean blood pressure", "mm[Hg]"},
};

std::string short_id(const std::string& name) {
  return name.substr(name.rfind('/') + 1);
}

json quantity(double value, const char* unit) {
  return {{"value", value}, {"unit", unit}, {"system", ucum}, {"code", unit}};
}

json coded(const char* system, const char* code, const char* display) {
  return {{"coding", json::array({{{"system", system}, {"code", code}, {"display", display}}})}, {"text", display}};
}

json vital_signs_category() {
  return json::array({{{"coding", json::array({{{"system", "http://terminology.hl7.org/CodeSystem/observation-category"},
                                                 {"code", "vital-signs"},
                                                 {"display", "Vital Signs"}}})}}});
}

class exporter {
public:
  exporter(const std::shared_ptr<grpc::Channel>& api, const fhir_export_request& req, std::chrono::milliseconds d)
      : req_(req), deadline_(std::chrono::system_clock::now() + d), registry_(v1::RegistryService::NewStub(api)),
        twins_(v1::TwinService::NewStub(api)) {
    patient_name_ = "tenants/" + req.tenant + "/patients/" + req.patient_id;
    patient_ref_ = "Patient/" + req.patient_id;
  }

  fhir_export_result run() {
    v1::GetPatientRequest gp;
    gp.set_name(patient_name_);
    v1::Patient patient;
    if (auto st = registry_->GetPatient(context().get(), gp, &patient); !st.ok())
      return fhir_failure(st, "the patient");
    v1::GetPatientTwinRequest gt;
    gt.set_name(patient_name_);
    v1::PatientTwin twin;
    if (auto st = twins_->GetPatientTwin(context().get(), gt, &twin); !st.ok())
      return fhir_failure(st, "the patient's twin");
    add("Patient", req_.patient_id,
        {{"identifier", json::array({{{"system", "urn:healthtwin:" + req_.tenant + ":patient"},
                                      {"value", req_.patient_id}}})},
         {"active", true}});
    for (auto& d : patient.devices())
      if (auto st = add_device(d, twin); !st.ok())
        return fhir_failure(st, "a device of the patient");
    for (auto& v : vitals)
      if (auto st = add_series(v); !st.ok())
        return fhir_failure(st, "the vital signs");
    if (auto st = add_blood_pressure(); !st.ok())
      return fhir_failure(st, "the blood pressure");
    if (observations_ > max_fhir_observations) {
      auto why = fmt::format("more than {} observations between start and end: export a shorter range",
                             max_fhir_observations);
      return {400, fhir_outcome("too-costly", why), why};
    }
    add_news2(twin);
    for (auto& a : twin.active_alerts())
      add_flag(a);
    json bundle{{"resourceType", "Bundle"},
                {"id", fmt::format("{}-{}-{}", req_.patient_id, req_.start_ms, req_.end_ms)},
                {"type", "collection"},
                {"timestamp", fhir_instant(models::wall_clock_ms())},
                {"entry", std::move(entries_)}};
    return {200, bundle.dump(), {}};
  }

private:
  std::unique_ptr<grpc::ClientContext> context() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(deadline_);
    c->AddMetadata("authorization", "Bearer " + req_.token);
    c->AddMetadata(std::string{composed_by_header}, "fhir-export " + in_process_secret());
    return c;
  }

  void add(const std::string& type, const std::string& id, json resource) {
    resource["resourceType"] = type;
    resource["id"] = id;
    entries_.push_back({{"fullUrl", req_.base_url + "/" + type + "/" + id}, {"resource", std::move(resource)}});
  }

  grpc::Status add_device(const std::string& name, const v1::PatientTwin& twin) {
    v1::GetDeviceTwinRequest r;
    r.set_name(name);
    v1::DeviceTwin d;
    if (auto st = twins_->GetDeviceTwin(context().get(), r, &d); !st.ok())
      return st;
    auto id = short_id(name);
    auto* type = v1::DeviceType_descriptor()->FindValueByNumber(d.type());
    add("Device", id,
        {{"identifier", json::array({{{"system", "urn:healthtwin:" + req_.tenant + ":device"}, {"value", id}}})},
         {"status", "active"},
         {"type", {{"text", type ? std::string{type->name()} : "DEVICE"}}},
         {"patient", {{"reference", patient_ref_}}}});
    // What it measures for this patient now: one DeviceMetric per vital sign.
    for (auto& v : twin.vitals()) {
      if (v.source_device() != name)
        continue;
      for (auto& c : vitals)
        if (c.metric == v.metric())
          add("DeviceMetric", id + "-" + c.id_prefix,
              {{"type", coded(loinc, c.code, c.display)},
               {"unit", {{"coding", json::array({{{"system", ucum}, {"code", c.unit}}})}}},
               {"source", {{"reference", "Device/" + id}}},
               {"operationalStatus", d.online() ? "on" : "off"},
               {"category", "measurement"}});
    }
    return grpc::Status::OK;
  }

  grpc::Status samples(v1::Metric metric, std::vector<std::pair<int64_t, double>>& out) {
    v1::GetVitalsHistoryRequest r;
    r.set_patient(patient_name_);
    r.set_metric(metric);
    r.set_start_time_ms(req_.start_ms);
    r.set_end_time_ms(req_.end_ms);
    r.set_page_size(100'000);
    for (;;) {
      v1::VitalsHistory h;
      if (auto st = twins_->GetVitalsHistory(context().get(), r, &h); !st.ok())
        return st;
      for (int i = 0; i < h.time_ms_size() && i < h.value_size(); ++i)
        out.emplace_back(h.time_ms(i), h.value(i));
      if (h.next_page_token().empty() || out.size() > max_fhir_observations)
        return grpc::Status::OK;
      r.set_page_token(h.next_page_token());
    }
  }

  json observation(const json& code, int64_t time_ms) {
    return {{"status", "final"},
            {"category", vital_signs_category()},
            {"code", code},
            {"subject", {{"reference", patient_ref_}}},
            {"effectiveDateTime", fhir_instant(time_ms)}};
  }

  grpc::Status add_series(const vital_code& c) {
    std::vector<std::pair<int64_t, double>> xs;
    if (auto st = samples(c.metric, xs); !st.ok())
      return st;
    auto code = coded(loinc, c.code, c.display);
    if (c.metric == v1::METRIC_SPO2)  // also coded as measured: by pulse oximetry
      code["coding"].push_back({{"system", loinc}, {"code", "59408-5"},
                                {"display", "Oxygen saturation in Arterial blood by Pulse oximetry"}});
    for (auto& [t, value] : xs) {
      if (++observations_ > max_fhir_observations)
        return grpc::Status::OK;
      auto o = observation(code, t);
      o["valueQuantity"] = quantity(value, c.unit);
      auto id = fmt::format("{}-{}", c.id_prefix, t);
      exported_[{c.metric, t}] = "Observation/" + id;
      add("Observation", id, std::move(o));
    }
    return grpc::Status::OK;
  }

  // The panel 85354-9 per measurement time; a pressure measured alone has
  // the other component absent.
  grpc::Status add_blood_pressure() {
    std::vector<std::pair<int64_t, double>> sys, dia;
    if (auto st = samples(v1::METRIC_SYSTOLIC_BP, sys); !st.ok())
      return st;
    if (auto st = samples(v1::METRIC_DIASTOLIC_BP, dia); !st.ok())
      return st;
    std::map<int64_t, std::pair<std::optional<double>, std::optional<double>>> at;
    for (auto& [t, v] : sys)
      at[t].first = v;
    for (auto& [t, v] : dia)
      at[t].second = v;
    auto component = [](const char* code, const char* display, std::optional<double> v) {
      json c{{"code", coded(loinc, code, display)}};
      if (v)
        c["valueQuantity"] = quantity(*v, "mm[Hg]");
      else
        c["dataAbsentReason"] = {{"coding", json::array({{{"system", "http://terminology.hl7.org/CodeSystem/data-absent-reason"},
                                                          {"code", "not-performed"}}})}};
      return c;
    };
    for (auto& [t, p] : at) {
      if (++observations_ > max_fhir_observations)
        return grpc::Status::OK;
      auto o = observation(coded(loinc, "85354-9", "Blood pressure panel with all children optional"), t);
      o["component"] = json::array({component("8480-6", "Systolic blood pressure", p.first),
                                    component("8462-4", "Diastolic blood pressure", p.second)});
      auto id = fmt::format("bp-{}", t);
      exported_[{v1::METRIC_SYSTOLIC_BP, t}] = "Observation/" + id;
      add("Observation", id, std::move(o));
    }
    return grpc::Status::OK;
  }

  // NEWS2 as last scored, with a component per parameter and derivedFrom
  // the exported vital signs it scored.
  void add_news2(const v1::PatientTwin& twin) {
    if (!twin.has_news2() || twin.news2().time_ms() <= 0)
      return;
    auto& n = twin.news2();
    static const std::map<v1::News2Parameter, v1::Metric> scored_from{
        {v1::NEWS2_PARAMETER_RESPIRATION_RATE, v1::METRIC_RESPIRATION_RATE},
        {v1::NEWS2_PARAMETER_SPO2, v1::METRIC_SPO2},
        {v1::NEWS2_PARAMETER_SYSTOLIC_BP, v1::METRIC_SYSTOLIC_BP},
        {v1::NEWS2_PARAMETER_PULSE, v1::METRIC_HEART_RATE},
        {v1::NEWS2_PARAMETER_TEMPERATURE, v1::METRIC_TEMPERATURE}};
    json components = json::array(), derived = json::array();
    std::set<std::string> linked;
    for (auto& part : n.parts()) {
      auto* p = v1::News2Parameter_descriptor()->FindValueByNumber(part.parameter());
      std::string name = p ? std::string{p->name()}.substr(sizeof("NEWS2_PARAMETER_") - 1) : "UNKNOWN";
      json c{{"code", {{"text", name}}}};
      if (part.missing())
        c["dataAbsentReason"] = {{"coding", json::array({{{"system", "http://terminology.hl7.org/CodeSystem/data-absent-reason"},
                                                          {"code", "not-performed"}}})}};
      else
        c["valueInteger"] = part.score();
      components.push_back(std::move(c));
      if (auto m = scored_from.find(part.parameter()); m != scored_from.end() && !part.missing())
        if (auto ref = exported_.find({m->second, part.time_ms()}); ref != exported_.end() && linked.insert(ref->second).second)
          derived.push_back({{"reference", ref->second}});
    }
    json o{{"status", n.complete() ? "final" : "preliminary"},
           {"category", json::array({{{"coding", json::array({{{"system", "http://terminology.hl7.org/CodeSystem/observation-category"},
                                                               {"code", "survey"}}})}}})},
           {"code", news2_code()},
           {"subject", {{"reference", patient_ref_}}},
           {"effectiveDateTime", fhir_instant(n.time_ms())},
           {"valueInteger", n.total()},
           {"component", std::move(components)}};
    if (!derived.empty())
      o["derivedFrom"] = std::move(derived);
    add("Observation", fmt::format("news2-{}", n.time_ms()), std::move(o));
  }

  void add_flag(const v1::Alert& a) {
    add(alert_resource_type(a), alert_resource_id(a), alert_resource(a, req_.tenant));
  }

  const fhir_export_request& req_;
  std::chrono::system_clock::time_point deadline_;
  std::unique_ptr<v1::RegistryService::Stub> registry_;
  std::unique_ptr<v1::TwinService::Stub> twins_;
  std::string patient_name_, patient_ref_;
  json entries_ = json::array();
  size_t observations_ = 0;
  std::map<std::pair<int, int64_t>, std::string> exported_;  // (metric, time) -> reference
};

}  // namespace

fhir_export_result fhir_failure(const grpc::Status& st, const char* what) {
  struct mapping {
    unsigned http;
    const char* code;
  };
  mapping m{500, "exception"};
  switch (st.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED: m = {401, "login"}; break;
    case grpc::StatusCode::PERMISSION_DENIED: m = {403, "forbidden"}; break;
    case grpc::StatusCode::NOT_FOUND: m = {404, "not-found"}; break;
    case grpc::StatusCode::INVALID_ARGUMENT: m = {400, "invalid"}; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: m = {429, "throttled"}; break;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: m = {503, "transient"}; break;
    default: break;
  }
  auto why = std::string{what} + ": " + st.error_message();
  return {m.http, fhir_outcome(m.code, why), why};
}

std::string fhir_base_url(const http_request& req, const std::string& tenant) {
  auto host = std::string{req.header("host")};
  return "https://" + models::bounded(host.empty() ? "localhost" : host, 253) + "/fhir/" + tenant;
}

std::string fhir_outcome(const std::string& code, const std::string& diagnostics) {
  json o{{"resourceType", "OperationOutcome"},
         {"issue", json::array({{{"severity", "error"}, {"code", code}, {"diagnostics", diagnostics}}})}};
  return o.dump();
}

fhir_export_result export_patient_fhir(const std::shared_ptr<grpc::Channel>& api, const fhir_export_request& req,
                                       std::chrono::milliseconds deadline) {
  return exporter{api, req, deadline}.run();
}

}  // namespace healthtwin::services
