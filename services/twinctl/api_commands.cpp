#include "services/twinctl/api_commands.hpp"

#include <chrono>
#include <cstdio>
#include <future>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "healthtwin/v1/alert.grpc.pb.h"
#include "healthtwin/v1/clinical.grpc.pb.h"
#include "healthtwin/v1/cluster.grpc.pb.h"
#include "healthtwin/v1/fhir.grpc.pb.h"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "healthtwin/v1/twin.grpc.pb.h"

namespace healthtwin::twinctl {

namespace {

namespace pb = google::protobuf;

void deadline(grpc::ClientContext& ctx, int seconds = 30) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// Calls `call(context, request, &page)` for every page from `req`'s token
// on, each within the deadline, and hands each page to `take`; the failed
// call's status otherwise.
template <class Resp, class Req, class Call, class Take>
grpc::Status every_page(Req req, Call call, Take take) {
  for (;;) {
    grpc::ClientContext ctx;
    deadline(ctx);
    Resp page;
    if (auto st = call(ctx, req, &page); !st.ok())
      return st;
    take(page);
    if (page.next_page_token().empty())
      return grpc::Status::OK;
    req.set_page_token(page.next_page_token());
  }
}

std::string time_of(int64_t ms) {
  return ms ? pb::util::TimeUtil::ToString(pb::util::TimeUtil::MillisecondsToTimestamp(ms)).substr(0, 19) : "-";
}

void print_patient(const v1::PatientTwin& t) {
  std::printf("%s  ward %s  bed %s  readings %llu\n", t.name().c_str(), t.ward().c_str(), t.bed().c_str(),
              static_cast<unsigned long long>(t.readings_applied()));
  if (t.has_news2())
    std::printf("NEWS2 %u%s  %s%s\n", t.news2().total(), t.news2().complete() ? "" : " (incomplete)",
                short_name(v1::News2Band_descriptor(), t.news2().band()).c_str(),
                t.has_news2_change_1h() ? (", " + std::to_string(t.news2_change_1h()) + " in 1 h").c_str() : "");
  for (auto& v : t.vitals())
    std::printf("  %-20s %8.1f  at %s  from %s\n", short_name(v1::Metric_descriptor(), v.metric()).c_str(), v.value(),
                time_of(v.time_ms()).c_str(), v.source_device().c_str());
  for (auto& a : t.active_alerts())
    std::printf("  alert %-6s %-12s %s  (%s)\n", short_name(v1::Priority_descriptor(), a.priority()).c_str(),
                short_name(v1::AlertState_descriptor(), a.state()).c_str(), a.message().c_str(), a.name().c_str());
}

void print_alert(const v1::Alert& a) {
  std::printf("%-6s %-12s %-16s %-19s %s  %s\n", short_name(v1::Priority_descriptor(), a.priority()).c_str(),
              short_name(v1::AlertState_descriptor(), a.state()).c_str(), a.ward().c_str(),
              time_of(a.raise_time_ms()).c_str(), a.message().c_str(), a.name().c_str());
}

}  // namespace

void print_json(const pb::Message& m, bool one_line) {
  pb::util::JsonPrintOptions o;
  o.add_whitespace = !one_line;
  o.always_print_primitive_fields = true;
  std::string json;
  (void)pb::util::MessageToJsonString(m, &json, o);
  std::printf("%s%s", json.c_str(), one_line || json.ends_with('\n') ? "\n" : "");
  std::fflush(stdout);
}

// An enum value's name without its type's prefix: PRIORITY_HIGH -> HIGH.
std::string short_name(const pb::EnumDescriptor* d, int v) {
  auto* value = d->FindValueByNumber(v);
  if (!value)
    return std::to_string(v);
  std::string name = value->name(), type = d->name();
  std::string prefix;
  for (char c : type)  // AlertState -> ALERT_STATE_
    prefix += std::isupper(static_cast<unsigned char>(c)) && !prefix.empty() ? std::string{"_"} + c
                                                                             : std::string{static_cast<char>(std::toupper(c))};
  prefix += "_";
  return name.starts_with(prefix) ? name.substr(prefix.size()) : name;
}

std::shared_ptr<grpc::Channel> channel_to(const services::channel_settings& node) {
  std::string error;
  auto channel = services::make_channel(node, error);
  if (!channel)
    std::fprintf(stderr, "twinctl: %s\n", error.c_str());
  return channel;
}

int failed(const char* what, const grpc::Status& st) {
  std::fprintf(stderr, "twinctl: %s: %s\n", what, st.error_message().c_str());
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::CANCELLED:
      return try_later;
    default:
      return refused;
  }
}

int call_method(const services::channel_settings& node, const std::string& method, const std::string& data) {
  // The API's descriptors register when their files are linked: name one
  // message of each so that they are.
  for (auto* d : {v1::IngestRequest::descriptor(), v1::CreatePatientRequest::descriptor(),
                  v1::GetPatientTwinRequest::descriptor(), v1::AcknowledgeAlertRequest::descriptor(),
                  v1::GetPatientSettingsRequest::descriptor(), v1::GetNodeStatusRequest::descriptor(),
                  v1::ExportPatientRequest::descriptor()})
    (void)d;
  auto slash = method.find('/');
  auto* svc = pb::DescriptorPool::generated_pool()->FindServiceByName("healthtwin.v1." + method.substr(0, slash));
  auto* m = svc && slash != std::string::npos ? svc->FindMethodByName(method.substr(slash + 1)) : nullptr;
  if (!m) {
    std::fprintf(stderr, "twinctl: no method %s in healthtwin.v1 (Service/Method, e.g. TwinService/GetPatientTwin)\n",
                 method.c_str());
    return usage;
  }
  if (m->client_streaming() || m->server_streaming()) {
    std::fprintf(stderr, "twinctl: %s streams: use twins watch, or a gRPC client\n", method.c_str());
    return usage;
  }
  auto* factory = pb::MessageFactory::generated_factory();
  std::unique_ptr<pb::Message> req{factory->GetPrototype(m->input_type())->New()};
  if (auto st = pb::util::JsonStringToMessage(data.empty() ? "{}" : data, req.get()); !st.ok()) {
    std::fprintf(stderr, "twinctl: --data is not a %s: %s\n", std::string{m->input_type()->name()}.c_str(),
                 std::string{st.message()}.c_str());
    return usage;
  }
  auto channel = channel_to(node);
  if (!channel)
    return usage;
  grpc::GenericStub stub{channel};
  grpc::ClientContext ctx;
  deadline(ctx);
  auto bytes = req->SerializeAsString();
  grpc::Slice slice{bytes};
  grpc::ByteBuffer in{&slice, 1}, reply;
  std::promise<grpc::Status> answered;
  stub.UnaryCall(&ctx, "/" + std::string{svc->full_name()} + "/" + std::string{m->name()}, {}, &in, &reply,
                 [&](grpc::Status st) { answered.set_value(std::move(st)); });
  if (auto st = answered.get_future().get(); !st.ok())
    return failed(method.c_str(), st);
  std::vector<grpc::Slice> slices;
  (void)reply.Dump(&slices);
  std::string out;
  for (auto& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<pb::Message> resp{factory->GetPrototype(m->output_type())->New()};
  if (!resp->ParseFromString(out)) {
    std::fprintf(stderr, "twinctl: the answer is not a %s\n", std::string{m->output_type()->name()}.c_str());
    return try_later;
  }
  print_json(*resp);
  return done;
}

int get_twin(const services::channel_settings& node, const std::string& name, output out) {
  auto stub = stub_to<v1::TwinService>(node);
  if (!stub)
    return usage;
  grpc::ClientContext ctx;
  deadline(ctx);
  if (name.find("/devices/") != std::string::npos) {
    v1::GetDeviceTwinRequest req;
    req.set_name(name);
    v1::DeviceTwin t;
    if (auto st = stub->GetDeviceTwin(&ctx, req, &t); !st.ok())
      return failed("GetDeviceTwin", st);
    if (out.json)
      print_json(t);
    else
      std::printf("%s  %s  patient %s  %s  battery %s  last reading %s  sequence %llu\n", t.name().c_str(),
                  short_name(v1::DeviceType_descriptor(), t.type()).c_str(),
                  t.patient().empty() ? "-" : t.patient().c_str(), t.online() ? "online" : "OFFLINE",
                  t.has_battery() ? (std::to_string(static_cast<int>(t.battery_percent())) + "%").c_str() : "-",
                  time_of(t.last_reading_time_ms()).c_str(), static_cast<unsigned long long>(t.last_sequence()));
    return done;
  }
  v1::GetPatientTwinRequest req;
  req.set_name(name);
  v1::PatientTwin t;
  if (auto st = stub->GetPatientTwin(&ctx, req, &t); !st.ok())
    return failed("GetPatientTwin", st);
  if (out.json)
    print_json(t);
  else
    print_patient(t);
  return done;
}

int list_twins(const services::channel_settings& node, const std::string& tenant, const std::string& filter,
               const std::string& order_by, output out) {
  auto stub = stub_to<v1::TwinService>(node);
  if (!stub)
    return usage;
  v1::ListPatientTwinsRequest req;
  req.set_parent("tenants/" + tenant);
  req.set_filter(filter);
  req.set_order_by(order_by);
  req.set_page_size(500);
  req.mutable_read_mask()->add_paths("name");
  for (auto* p : {"ward", "bed", "news2", "active_alerts"})
    req.mutable_read_mask()->add_paths(p);
  v1::ListPatientTwinsResponse all;
  auto st = every_page<v1::ListPatientTwinsResponse>(
      req, [&](auto& ctx, auto& r, auto* page) { return stub->ListPatientTwins(&ctx, r, page); },
      [&](auto& page) {
        all.mutable_patient_twins()->MergeFrom(page.patient_twins());
        all.set_total_size(page.total_size());
        all.mutable_unreachable_members()->MergeFrom(page.unreachable_members());
      });
  if (!st.ok())
    return failed("ListPatientTwins", st);
  if (out.json) {
    print_json(all);
    return done;
  }
  std::printf("%-48s %-16s %-8s %6s %-11s %s\n", "patient", "ward", "bed", "NEWS2", "band", "open alerts");
  for (auto& t : all.patient_twins()) {
    std::string news2 = t.has_news2() ? std::to_string(t.news2().total()) + (t.news2().complete() ? "" : "*") : "-";
    std::printf("%-48s %-16s %-8s %6s %-11s %d\n", t.name().c_str(), t.ward().c_str(), t.bed().c_str(), news2.c_str(),
                t.has_news2() ? short_name(v1::News2Band_descriptor(), t.news2().band()).c_str() : "-",
                t.active_alerts_size());
  }
  std::printf("%d patient(s)\n", all.patient_twins_size());
  for (auto& m : all.unreachable_members())
    std::printf("member %s did not answer: its patients are missing\n", m.c_str());
  return done;
}

int watch_twin(const services::channel_settings& node, const std::string& name, int count, output out) {
  auto stub = stub_to<v1::TwinService>(node);
  if (!stub)
    return usage;
  grpc::ClientContext ctx;
  v1::WatchPatientTwinRequest req;
  req.set_name(name);
  auto reader = stub->WatchPatientTwin(&ctx, req);
  v1::PatientTwin t;
  int seen = 0;
  while (reader->Read(&t)) {
    if (out.json) {
      print_json(t, true);
    } else {
      std::printf("%s NEWS2 %s", time_of(t.news2().time_ms()).c_str(),
                  t.has_news2() ? std::to_string(t.news2().total()).c_str() : "-");
      for (auto& v : t.vitals())
        std::printf("  %s %.1f", short_name(v1::Metric_descriptor(), v.metric()).c_str(), v.value());
      std::printf("  alerts %d\n", t.active_alerts_size());
      std::fflush(stdout);
    }
    if (count > 0 && ++seen >= count) {
      ctx.TryCancel();
      break;
    }
  }
  auto st = reader->Finish();
  if (!st.ok() && !(count > 0 && seen >= count))
    return failed("WatchPatientTwin", st);
  return done;
}

int list_alerts(const services::channel_settings& node, const std::string& tenant, const std::string& ward,
                const std::string& patient, bool include_resolved, output out) {
  auto stub = stub_to<v1::AlertService>(node);
  if (!stub)
    return usage;
  v1::ListAlertsRequest req;
  req.set_parent("tenants/" + tenant);
  req.set_ward(ward);
  if (!patient.empty())
    req.set_patient("tenants/" + tenant + "/patients/" + patient);
  req.set_include_resolved(include_resolved);
  req.set_page_size(1000);
  v1::ListAlertsResponse all;
  auto st = every_page<v1::ListAlertsResponse>(
      req, [&](auto& ctx, auto& r, auto* page) { return stub->ListAlerts(&ctx, r, page); },
      [&](auto& page) {
        all.mutable_alerts()->MergeFrom(page.alerts());
        all.mutable_unreachable_members()->MergeFrom(page.unreachable_members());
      });
  if (!st.ok())
    return failed("ListAlerts", st);
  if (out.json) {
    print_json(all);
    return done;
  }
  std::printf("%-6s %-12s %-16s %-19s %s\n", "prio", "state", "ward", "raised (UTC)", "message  name");
  for (auto& a : all.alerts())
    print_alert(a);
  std::printf("%d alert(s)\n", all.alerts_size());
  return done;
}

int act_on_alert(const services::channel_settings& node, const std::string& action, const std::string& name,
                 const std::string& note, output out) {
  auto stub = stub_to<v1::AlertService>(node);
  if (!stub)
    return usage;
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::Alert a;
  grpc::Status st;
  if (action == "ack") {
    v1::AcknowledgeAlertRequest req;
    req.set_name(name);
    req.set_note(note);
    st = stub->AcknowledgeAlert(&ctx, req, &a);
  } else {
    v1::ResolveAlertRequest req;
    req.set_name(name);
    req.set_note(note);
    st = stub->ResolveAlert(&ctx, req, &a);
  }
  if (!st.ok())
    return failed(action == "ack" ? "AcknowledgeAlert" : "ResolveAlert", st);
  if (out.json)
    print_json(a);
  else
    print_alert(a);
  return done;
}

int silence_alerts(const services::channel_settings& node, const std::string& patient, int minutes,
                   const std::string& metric, const std::string& reason, output out) {
  v1::SilenceAlertsRequest req;
  req.set_patient(patient);
  if (!metric.empty()) {
    auto* value = v1::Metric_descriptor()->FindValueByName("METRIC_" + metric);
    if (!value) {
      std::fprintf(stderr, "twinctl: --metric %s: not a metric (HEART_RATE, SPO2, ...)\n", metric.c_str());
      return usage;
    }
    req.set_metric(static_cast<v1::Metric>(value->number()));
  }
  req.mutable_duration()->set_seconds(int64_t{minutes} * 60);
  req.set_reason(reason);
  auto stub = stub_to<v1::AlertService>(node);
  if (!stub)
    return usage;
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::SilenceAlertsResponse resp;
  if (auto st = stub->SilenceAlerts(&ctx, req, &resp); !st.ok())
    return failed("SilenceAlerts", st);
  if (out.json) {
    print_json(resp);
    return done;
  }
  std::printf("silenced until %s: %d open alert(s)\n", pb::util::TimeUtil::ToString(resp.silenced_until()).c_str(),
              resp.alerts_size());
  for (auto& a : resp.alerts())
    print_alert(a);
  return done;
}

int export_fhir(const services::channel_settings& node, const std::string& name, double hours) {
  auto stub = stub_to<v1::FhirService>(node);
  if (!stub)
    return usage;
  v1::ExportPatientRequest req;
  req.set_name(name);
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  *req.mutable_end_time() = pb::util::TimeUtil::MillisecondsToTimestamp(now);
  *req.mutable_start_time() =
      pb::util::TimeUtil::MillisecondsToTimestamp(now - static_cast<int64_t>(hours * 3'600'000));
  grpc::ClientContext ctx;
  deadline(ctx, 120);
  v1::FhirBundle bundle;
  if (auto st = stub->ExportPatient(&ctx, req, &bundle); !st.ok())
    return failed("ExportPatient", st);
  std::printf("%s\n", bundle.json().c_str());
  return done;
}

std::optional<std::pair<std::string, std::string>> split_name(const std::string& name, const char* kind) {
  auto slash = name.find('/', 8);
  std::string middle = std::string{"/"} + kind + "/";
  if (!name.starts_with("tenants/") || slash == std::string::npos || name.compare(slash, middle.size(), middle) != 0 ||
      name.size() == slash + middle.size() || name.find('/', slash + middle.size()) != std::string::npos) {
    std::fprintf(stderr, "twinctl: %s: must be tenants/T/%s/ID\n", name.c_str(), kind);
    return std::nullopt;
  }
  return std::pair{name.substr(0, slash), name.substr(slash + middle.size())};
}

}  // namespace healthtwin::twinctl
