#include "services/twinctl/alert_commands.hpp"

#include <chrono>
#include <cstdio>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include "healthtwin/v1/alert.grpc.pb.h"
#include "services/twinctl/api_commands.hpp"

namespace healthtwin::twinctl {

namespace {

using google::protobuf::util::TimeUtil;

std::string seconds(const google::protobuf::Duration& d, bool set) {
  if (!set)
    return "-";
  char buf[32];
  auto s = static_cast<double>(TimeUtil::DurationToMilliseconds(d)) / 1000.0;
  if (s < 120)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else
    std::snprintf(buf, sizeof buf, "%.1fmin", s / 60);
  return buf;
}

void print_group(const v1::AlarmBurdenGroup& g, const char* label) {
  char share[16] = "-";
  if (g.resolved() > 0)
    std::snprintf(share, sizeof share, "%.0f%%", 100 * g.share_resolved_unacknowledged());
  std::printf("%-20s %8u %7llu %10.2f %6llu %8s %8s %8llu %7s %9llu\n", label, g.patients(),
              static_cast<unsigned long long>(g.alerts_raised()), g.alerts_per_patient_day(),
              static_cast<unsigned long long>(g.acknowledged()),
              seconds(g.time_to_acknowledge_p50(), g.has_time_to_acknowledge_p50()).c_str(),
              seconds(g.time_to_acknowledge_p90(), g.has_time_to_acknowledge_p90()).c_str(),
              static_cast<unsigned long long>(g.resolved()), share,
              static_cast<unsigned long long>(g.escalated()));
}

std::string enum_name(const google::protobuf::EnumDescriptor* d, int v, std::string_view prefix) {
  auto* value = d->FindValueByNumber(v);
  std::string name = value ? value->name() : std::to_string(v);
  return name.starts_with(prefix) ? name.substr(prefix.size()) : name;
}

}  // namespace

int print_alarm_burden(const services::channel_settings& node, const burden_query& q) {
  auto stub = stub_to<v1::AlertService>(node);
  if (!stub)
    return usage;
  v1::GetAlarmBurdenRequest req;
  req.set_parent("tenants/" + q.tenant);
  req.set_ward(q.ward);
  if (!q.patient.empty())
    req.set_patient("tenants/" + q.tenant + "/patients/" + q.patient);
  auto now = std::chrono::system_clock::now();
  auto start = now - std::chrono::milliseconds(static_cast<int64_t>(q.hours * 3'600'000));
  *req.mutable_end_time() = TimeUtil::MillisecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  *req.mutable_start_time() = TimeUtil::MillisecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch()).count());
  req.set_top(q.top);
  grpc::ClientContext ctx;
  ctx.set_deadline(now + std::chrono::seconds(60));
  v1::AlarmBurden r;
  if (auto st = stub->GetAlarmBurden(&ctx, req, &r); !st.ok())
    return failed("GetAlarmBurden", st);
  if (q.json) {
    std::string json;
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = true;
    o.always_print_primitive_fields = true;
    (void)google::protobuf::util::MessageToJsonString(r, &json, o);
    std::printf("%s", json.c_str());
    return 0;
  }
  std::printf("alarm burden of %s%s%s from %s to %s\n\n", req.parent().c_str(),
              q.ward.empty() ? "" : (", ward " + q.ward).c_str(),
              q.patient.empty() ? "" : (", patient " + q.patient).c_str(),
              TimeUtil::ToString(r.start_time()).c_str(), TimeUtil::ToString(r.end_time()).c_str());
  std::printf("%-20s %8s %7s %10s %6s %8s %8s %8s %7s %9s\n", "ward", "patients", "alerts", "/pt-day", "acked",
              "ack p50", "ack p90", "resolved", "unacked", "escalated");
  for (auto& w : r.wards())
    print_group(w, w.ward().c_str());
  print_group(r.total(), "(total)");
  std::printf("\nby kind and priority (total):\n");
  for (auto& c : r.total().by_kind_and_priority())
    std::printf("  %-20s %-7s %7llu  %.2f per patient-day\n",
                enum_name(v1::AlertKind_descriptor(), c.kind(), "ALERT_KIND_").c_str(),
                enum_name(v1::Priority_descriptor(), c.priority(), "PRIORITY_").c_str(),
                static_cast<unsigned long long>(c.count()), c.per_patient_day());
  for (auto [title, list] : {std::pair{"noisiest patients", &r.noisiest_patients()},
                             std::pair{"noisiest devices", &r.noisiest_devices()}}) {
    std::printf("\n%s:\n", title);
    for (auto& s : *list)
      std::printf("  %-48s %-16s %7llu\n", s.name().c_str(), s.ward().c_str(),
                  static_cast<unsigned long long>(s.alerts_raised()));
  }
  for (auto& m : r.unreachable_members())
    std::printf("\nmember %s did not answer: its part is missing\n", m.c_str());
  return 0;
}

}  // namespace healthtwin::twinctl
