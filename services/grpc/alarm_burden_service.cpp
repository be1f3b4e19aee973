// AlertService.GetAlarmBurden: the alarm burden of a tenant, ward or patient
// over a window, from this node's alert event log (actors/alarm_burden) and
// its census of patients per ward; in a cluster, merged from every member.

#include <algorithm>
#include <cmath>
#include <future>

#include "actors/alerts/alarm_burden.hpp"
#include "actors/models/wall_clock.hpp"
#include "services/grpc/alert_stream.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/alert_table.hpp"

namespace healthtwin::services {

namespace {

using grpc::Status;

constexpr int64_t day_ms = 24 * 3600 * 1000;
constexpr int64_t max_window_ms = 31 * day_ms;
/// Events read for one report at most: a window that holds more is refused
/// (narrow it) rather than holding a gRPC thread for long.
constexpr uint64_t max_events_scanned = 2'000'000;
/// Timestamps the API takes: 0001-01-01 .. 9999-12-31 (google.protobuf.Timestamp).
constexpr int64_t min_seconds = -62'135'596'800, max_seconds = 253'402'300'799;

bool valid_time(const google::protobuf::Timestamp& t) {
  return t.seconds() >= min_seconds && t.seconds() <= max_seconds && t.nanos() >= 0 && t.nanos() < 1'000'000'000;
}

// The sequence after which the window's events start: every event at or
// before it is older than `start_ms` (bisection over the log, whose event
// times grow with the sequence).
caf::expected<uint64_t> window_start(storage::alert_table& table, int64_t start_ms) {
  auto last = table.last_event_sequence();
  if (!last)
    return last.error();
  uint64_t lo = 0, hi = *last;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2, seq = 0;
    int64_t time = 0;
    auto err = table.scan_events(mid, [&](uint64_t s, std::string_view bytes) {
      actors::alert_event e;
      seq = s;
      time = actors::parse(bytes, e) ? e.event_time_ms : start_ms;  // unreadable: stop here
      return false;
    });
    if (err)
      return err;
    if (seq == 0 || time >= start_ms)
      hi = mid;
    else
      lo = seq;
  }
  return lo;
}

double per_day(uint64_t n, double patient_days) {
  return patient_days > 0 ? static_cast<double>(n) / patient_days : 0.0;
}

// A group as the API shows it; quantiles exact from this node's delays.
void to_api(const actors::alarm_burden_group& g, double days, v1::AlarmBurdenGroup* out) {
  out->set_ward(g.ward);
  out->set_patients(g.patients);
  out->set_patient_days(g.patients * days);
  out->set_alerts_raised(g.raised);
  out->set_alerts_per_patient_day(per_day(g.raised, out->patient_days()));
  for (auto& [key, n] : g.by_kind_priority) {
    auto* c = out->add_by_kind_and_priority();
    c->set_kind(static_cast<v1::AlertKind>(key.first));
    c->set_priority(static_cast<v1::Priority>(key.second));
    c->set_count(n);
    c->set_per_patient_day(per_day(n, out->patient_days()));
  }
  out->set_acknowledged(g.acknowledged());
  if (auto p50 = g.ack_quantile(0.5))
    set_duration(out->mutable_time_to_acknowledge_p50(), *p50);
  if (auto p90 = g.ack_quantile(0.9))
    set_duration(out->mutable_time_to_acknowledge_p90(), *p90);
  out->set_resolved(g.resolved);
  out->set_resolved_unacknowledged(g.resolved_unacknowledged);
  out->set_share_resolved_unacknowledged(
      g.resolved ? static_cast<double>(g.resolved_unacknowledged) / static_cast<double>(g.resolved) : 0.0);
  out->set_escalated(g.escalated);
  for (auto n : g.ack_buckets)
    out->add_time_to_acknowledge_buckets(n);
}

// `from` (another member's part of the same group) added into `into`. The
// quantiles of the sum are read from the summed buckets (the upper edge of
// the bucket that holds them; beyond the last edge, the larger of the
// members' own).
void merge(v1::AlarmBurdenGroup& into, const v1::AlarmBurdenGroup& from, double days) {
  into.set_patients(into.patients() + from.patients());
  into.set_patient_days(into.patients() * days);
  into.set_alerts_raised(into.alerts_raised() + from.alerts_raised());
  into.set_alerts_per_patient_day(per_day(into.alerts_raised(), into.patient_days()));
  for (auto& c : from.by_kind_and_priority()) {
    auto it = std::find_if(into.mutable_by_kind_and_priority()->begin(), into.mutable_by_kind_and_priority()->end(),
                           [&](auto& x) { return x.kind() == c.kind() && x.priority() == c.priority(); });
    auto* x = it != into.mutable_by_kind_and_priority()->end() ? &*it : into.add_by_kind_and_priority();
    x->set_kind(c.kind());
    x->set_priority(c.priority());
    x->set_count(x->count() + c.count());
  }
  for (auto& c : *into.mutable_by_kind_and_priority())
    c.set_per_patient_day(per_day(c.count(), into.patient_days()));
  bool both_acknowledged = into.acknowledged() > 0 && from.acknowledged() > 0;
  into.set_acknowledged(into.acknowledged() + from.acknowledged());
  into.set_resolved(into.resolved() + from.resolved());
  into.set_resolved_unacknowledged(into.resolved_unacknowledged() + from.resolved_unacknowledged());
  into.set_share_resolved_unacknowledged(
      into.resolved() ? static_cast<double>(into.resolved_unacknowledged()) / static_cast<double>(into.resolved())
                      : 0.0);
  into.set_escalated(into.escalated() + from.escalated());
  auto& buckets = *into.mutable_time_to_acknowledge_buckets();
  buckets.Resize(static_cast<int>(actors::ack_bucket_edges_ms.size() + 1), 0);
  for (int i = 0; i < from.time_to_acknowledge_buckets_size() && i < buckets.size(); ++i)
    buckets[i] += from.time_to_acknowledge_buckets(i);
  if (!both_acknowledged) {
    if (from.acknowledged() > 0) {
      *into.mutable_time_to_acknowledge_p50() = from.time_to_acknowledge_p50();
      *into.mutable_time_to_acknowledge_p90() = from.time_to_acknowledge_p90();
    }
    return;
  }
  auto quantile = [&](double p, int64_t beyond) {
    auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(into.acknowledged())));
    uint64_t seen = 0;
    for (size_t i = 0; i < actors::ack_bucket_edges_ms.size(); ++i)
      if ((seen += buckets[static_cast<int>(i)]) >= rank)
        return actors::ack_bucket_edges_ms[i];
    return beyond;
  };
  auto p50 = std::max(to_ms(into.time_to_acknowledge_p50()), to_ms(from.time_to_acknowledge_p50()));
  auto p90 = std::max(to_ms(into.time_to_acknowledge_p90()), to_ms(from.time_to_acknowledge_p90()));
  set_duration(into.mutable_time_to_acknowledge_p50(), quantile(0.5, p50));
  set_duration(into.mutable_time_to_acknowledge_p90(), quantile(0.9, p90));
}

void merge_sources(google::protobuf::RepeatedPtrField<v1::NoisySource>& into,
                   const google::protobuf::RepeatedPtrField<v1::NoisySource>& from, int top) {
  for (auto& s : from)
    *into.Add() = s;
  std::stable_sort(into.begin(), into.end(), [](auto& a, auto& b) { return a.alerts_raised() > b.alerts_raised(); });
  while (into.size() > top)
    into.RemoveLast();
}

// Another member's report of the same window and scope, added into `resp`.
void add_part(const v1::AlarmBurden& part, double days, int top, v1::AlarmBurden* resp) {
  merge(*resp->mutable_total(), part.total(), days);
  for (auto& w : part.wards()) {
    auto it = std::find_if(resp->mutable_wards()->begin(), resp->mutable_wards()->end(),
                           [&](auto& x) { return x.ward() == w.ward(); });
    if (it == resp->mutable_wards()->end())
      *resp->add_wards() = w;
    else
      merge(*it, w, days);
  }
  merge_sources(*resp->mutable_noisiest_patients(), part.noisiest_patients(), top);
  merge_sources(*resp->mutable_noisiest_devices(), part.noisiest_devices(), top);
}

// Adds every other member's report (made there as a forwarded call, in
// parallel, within the caller's deadline) to `resp`.
void gather(service_env& env, grpc::ServerContext* call, const v1::GetAlarmBurdenRequest& req, double days,
            int top, v1::AlarmBurden* resp) {
  auto request = req;  // the same window on every member
  *request.mutable_start_time() = resp->start_time();
  *request.mutable_end_time() = resp->end_time();
  env.ask_every_member<v1::AlarmBurden>(
      call,
      [&](owner_stubs& stubs, grpc::ClientContext& ctx, v1::AlarmBurden& out, auto done) {
        stubs.alerts->async()->GetAlarmBurden(&ctx, &request, &out, std::move(done));
      },
      [&](const std::string& member, const Status& st, const v1::AlarmBurden& part) {
        if (!st.ok())
          return resp->add_unreachable_members(member);
        add_part(part, days, top, resp);
      });
}

}  // namespace

grpc::Status get_alarm_burden(service_env& env, grpc::ServerContext* call, const v1::GetAlarmBurdenRequest& req,
                              v1::AlarmBurden* resp) {
  return env.serve(call, "AlertService/GetAlarmBurden", [&](rpc_call& rc) -> Status {
    actors::alert_filter scope;
    if (auto st = parse_alert_filter(req.parent(), req.ward(), v1::PRIORITY_UNSPECIFIED, req.patient(), scope);
        !st.ok())
      return st;
    std::vector<field_violation> bad;
    if (req.has_start_time() && !valid_time(req.start_time()))
      bad.push_back({"start_time", "must be a valid timestamp"});
    if (req.has_end_time() && !valid_time(req.end_time()))
      bad.push_back({"end_time", "must be a valid timestamp"});
    if (req.top() < 0 || req.top() > 100)
      bad.push_back({"top", "must be between 0 (the default, 10) and 100"});
    if (!bad.empty())
      return invalid_argument(bad);
    int64_t end = req.has_end_time() ? to_ms(req.end_time()) : models::wall_clock_ms();
    int64_t start = req.has_start_time() ? to_ms(req.start_time()) : end - day_ms;
    if (start >= end)
      return invalid_argument("start_time", "must be before end_time");
    if (end - start > max_window_ms)
      return invalid_argument("start_time", "the window must be at most 31 days");
    if (auto st = rc.allow({scope.tenant, {}}); !st.ok())
      return st;
    // One patient's alerts are kept by its owner.
    if (!scope.patient.empty()) {
      auto remote = [&](owner_stubs& s, grpc::ClientContext& c) {
        return s.alerts->GetAlarmBurden(&c, req, resp);
      };
      if (auto fwd = env.forward(call, scope.patient, remote))
        return *fwd;
      if (auto home = env.at_home(call, scope.patient, remote))  // homed in another region
        return *home;
    }

    storage::alert_table table{*env.ctx.store};
    auto after = window_start(table, start);
    if (!after)
      return to_status(after.error());
    actors::alarm_burden_builder builder{scope, start, end};
    uint64_t scanned = 0;
    auto err = table.scan_events(*after, [&](uint64_t, std::string_view bytes) {
      if (++scanned > max_events_scanned)
        return false;
      actors::alert_event e;
      if (actors::parse(bytes, e))
        builder.add(e);
      return true;
    });
    if (err)
      return to_status(err);
    if (scanned > max_events_scanned)
      return Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                    "more than 2,000,000 alert events from start_time on: narrow the window");
    std::map<std::string, uint32_t> census;
    std::string unused;
    for (auto& [name, summary] : local_patients(env, scope.tenant, actors::twin_filter{},
                                                *actors::twin_order::parse("", unused)).first)
      if (scope.patient.empty() || name == scope.patient)
        ++census[summary.ward];
    size_t top = req.top() == 0 ? 10 : static_cast<size_t>(req.top());
    auto report = std::move(builder).finish(census, top);

    double days = static_cast<double>(end - start) / static_cast<double>(day_ms);
    set_timestamp(resp->mutable_start_time(), start);
    set_timestamp(resp->mutable_end_time(), end);
    to_api(report.total, days, resp->mutable_total());
    for (auto& w : report.wards)
      to_api(w, days, resp->add_wards());
    for (auto [list, out] : {std::pair{&report.noisiest_patients, resp->mutable_noisiest_patients()},
                             std::pair{&report.noisiest_devices, resp->mutable_noisiest_devices()}})
      for (auto& s : *list) {
        auto* x = out->Add();
        x->set_name(s.name);
        x->set_ward(s.ward);
        x->set_alerts_raised(s.raised);
      }
    // In a cluster the edge adds every other member's part; a forwarded
    // call answers from this member alone.
    if (env.ctx.forwarding && scope.patient.empty() && !call->client_metadata().count(forwarded_by_header))
      gather(env, call, req, days, static_cast<int>(top), resp);
    std::stable_sort(resp->mutable_wards()->begin(), resp->mutable_wards()->end(), [](auto& a, auto& b) {
      return a.alerts_per_patient_day() > b.alerts_per_patient_day();
    });
    return Status::OK;
  });
}

}  // namespace healthtwin::services
