#include <atomic>
#include <charconv>
#include <condition_variable>
#include <future>
#include <thread>

#include "actors/alerts/alert_hub.hpp"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "services/grpc/alert_stream.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/alert_table.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using grpc::ServerContext;
using grpc::Status;

class alert_service final : public v1::AlertService::Service {
public:
  explicit alert_service(service_env& env) : env_(env) {}

  Status StreamAlerts(ServerContext* call, const v1::StreamAlertsRequest* req,
                      grpc::ServerWriter<v1::AlertEvent>* writer) override {
    return stream_alerts(env_, call, *req, writer);  // alert_stream.cpp
  }

  Status ListAlerts(ServerContext* call, const v1::ListAlertsRequest* req,
                    v1::ListAlertsResponse* resp) override {
    return env_.serve(call, "AlertService/ListAlerts", [&](rpc_call& rc) -> Status {
      actors::alert_filter filter;
      if (auto st = parse_alert_filter(req->parent(), req->ward(), req->min_priority(),
                                       req->patient(), filter);
          !st.ok())
        return st;
      for (auto s : req->states()) {
        if (s < v1::ALERT_STATE_ACTIVE || s > v1::ALERT_STATE_RESOLVED)
          return invalid_argument("states", "must be known AlertStates other than UNSPECIFIED");
        filter.states |= static_cast<uint8_t>(1u << s);
      }
      bool include_resolved = req->include_resolved() ||
                              (filter.states & (1u << v1::ALERT_STATE_RESOLVED)) != 0;
      if (auto st = rc.allow({filter.tenant, {}}); !st.ok())
        return st;
      if (req->page_size() < 0 || req->page_size() > 1000)
        return invalid_argument("page_size", "must be between 0 and 1000");
      size_t offset = 0;
      if (!req->page_token().empty()) {
        auto& t = req->page_token();
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), offset);
        if (ec != std::errc{} || p != t.data() + t.size())
          return invalid_argument("page_token", "is not a token this service issued");
      }
      // One patient's alerts live with its twin, on its owner.
      if (!filter.patient.empty()) {
        auto remote = [&](owner_stubs& s, grpc::ClientContext& c) {
          return s.alerts->ListAlerts(&c, *req, resp);
        };
        if (auto fwd = env_.forward(call, filter.patient, remote))
          return *fwd;
        if (auto home = env_.at_home(call, filter.patient, remote))  // homed in another region
          return *home;
      }
      auto list = env_.ask<std::vector<actors::alert_record>>(
          env_.ctx.alert_hub, env_.timeout(call), actors::alert_list_atom::value, filter,
          include_resolved);
      if (!list)
        return to_status(list.error());
      size_t page = req->page_size() == 0 ? 100 : static_cast<size_t>(req->page_size());
      std::vector<v1::Alert> alerts;
      alerts.reserve(list->size());
      for (auto& a : *list)
        to_api(a, &alerts.emplace_back());
      // In a cluster, a forwarded call answers from this member alone; the
      // edge gathers every member's first offset + page and merges them.
      if (env_.ctx.forwarding && filter.patient.empty() &&
          !call->client_metadata().count(forwarded_by_header))
        gather_alerts(call, *req, offset + page, alerts, resp);
      auto first = std::min(offset, alerts.size());
      auto end = std::min(alerts.size(), first + page);
      for (auto i = first; i < end; ++i)
        *resp->add_alerts() = std::move(alerts[i]);
      if (end < alerts.size())
        resp->set_next_page_token(std::to_string(end));
      return Status::OK;
    });
  }

  Status AcknowledgeAlert(ServerContext* call, const v1::AcknowledgeAlertRequest* req,
                          v1::Alert* resp) override {
    return env_.serve(call, "AlertService/AcknowledgeAlert", [&](rpc_call& rc) -> Status {
      std::string acknowledged_by;
      std::optional<models::alert_name> name;
      if (auto st = check_alert_action(rc, req->name(), "acknowledged_by", req->acknowledged_by(),
                                       req->note(), acknowledged_by, name);
          !st.ok())
        return st;
      auto remote = [&](owner_stubs& s, grpc::ClientContext& c) {
        return s.alerts->AcknowledgeAlert(&c, *req, resp);
      };
      if (auto fwd = env_.forward(call, name->owner, remote))
        return *fwd;
      if (auto home = env_.at_home(call, name->owner, remote))  // its patient is homed elsewhere
        return *home;
      auto a = env_.ask<actors::alert_record>(env_.ctx.alert_hub, env_.timeout(call),
                                              actors::alert_ack_atom::value,
                                              actors::alert_action{req->name(), acknowledged_by,
                                                                   req->note()});
      if (!a)
        return to_status(a.error(), "alert");
      to_api(*a, resp);
      return Status::OK;
    });
  }

  Status ResolveAlert(ServerContext* call, const v1::ResolveAlertRequest* req,
                      v1::Alert* resp) override {
    return env_.serve(call, "AlertService/ResolveAlert", [&](rpc_call& rc) -> Status {
      std::string resolved_by;
      std::optional<models::alert_name> name;
      if (auto st = check_alert_action(rc, req->name(), "resolved_by", req->resolved_by(), req->note(),
                                       resolved_by, name);
          !st.ok())
        return st;
      auto remote = [&](owner_stubs& s, grpc::ClientContext& c) {
        return s.alerts->ResolveAlert(&c, *req, resp);
      };
      if (auto fwd = env_.forward(call, name->owner, remote))
        return *fwd;
      if (auto home = env_.at_home(call, name->owner, remote))  // its patient is homed elsewhere
        return *home;
      caf::expected<actors::alert_record> a{caf::sec::request_timeout};
      if (name->kind == models::twin_kind::device) {
        // A device's own alert: no condition in a patient twin to reset.
        a = env_.ask<actors::alert_record>(env_.ctx.alert_hub, env_.timeout(call),
                                           actors::alert_resolve_by_atom::value,
                                           actors::alert_action{req->name(), resolved_by, req->note()});
      } else {
        std::string patient{name->owner};
        if (auto st = check_patient(env_, rc, patient, "name"); !st.ok())
          return st.error_code() == grpc::StatusCode::NOT_FOUND
                     ? Status(grpc::StatusCode::NOT_FOUND, "alert not found")
                     : st;
        a = env_.ask<actors::alert_record>(env_.shard_for(patient), env_.timeout(call),
                                           actors::resolve_atom::value,
                                           actors::hand_resolution{patient, req->name(), resolved_by,
                                                                   req->note()});
      }
      if (!a)
        return to_status(a.error(), "alert");
      to_api(*a, resp);
      return Status::OK;
    });
  }

  Status SilenceAlerts(ServerContext* call, const v1::SilenceAlertsRequest* req,
                       v1::SilenceAlertsResponse* resp) override {
    return env_.serve(call, "AlertService/SilenceAlerts", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_patient(rc, req->patient(), "patient"), req->patient(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.alerts->SilenceAlerts(&c, *req, resp);
          },
          [&]() -> Status {
            if (auto st = check_patient(env_, rc, req->patient(), "patient"); !st.ok())
              return st;
            std::vector<field_violation> bad;
            if (req->metric() != v1::METRIC_UNSPECIFIED && !models::metric_from_number(req->metric()))
              bad.push_back({"metric", "unknown metric"});
            auto duration_ms = to_ms(req->duration());
            if (duration_ms < 1000 || duration_ms > actors::max_silence_ms)
              bad.push_back({"duration", "must be between 1 s and " +
                                             std::to_string(actors::max_silence_ms / 60'000) +
                                             " min"});
            auto silenced_by = acting_as(rc, req->silenced_by(), "silenced_by", bad);
            if (!valid_note(req->reason(), max_note_bytes))
              bad.push_back({"reason", "must be at most 1000 characters, without control characters other "
                                       "than line feed and tab"});
            if (!bad.empty())
              return invalid_argument(bad);
            actors::alert_silence s;
            s.patient = req->patient();
            s.subject = static_cast<models::metric>(req->metric());
            s.until_ms = service_env::now_ms() + duration_ms;
            s.silenced_by = silenced_by;
            s.reason = req->reason();
            auto until = s.until_ms;
            auto alerts = env_.ask<std::vector<actors::alert_record>>(
                env_.ctx.alert_hub, env_.timeout(call), actors::alert_silence_atom::value, std::move(s));
            if (!alerts)
              return to_status(alerts.error(), "silence");
            set_timestamp(resp->mutable_silenced_until(), until);
            for (auto& a : *alerts)
              to_api(a, resp->add_alerts());
            return Status::OK;
          });
    });
  }

  Status GetAlarmBurden(ServerContext* call, const v1::GetAlarmBurdenRequest* req,
                        v1::AlarmBurden* resp) override {
    return get_alarm_burden(env_, call, *req, resp);  // alarm_burden_service.cpp
  }

private:
  // Adds the first `limit` alerts of every other member (ListAlerts made
  // there as forwarded calls, in parallel, within the caller's deadline) to
  // `alerts`, newest first as the hub orders them; names the members that
  // did not answer in resp.unreachable_members.
  void gather_alerts(ServerContext* call, const v1::ListAlertsRequest& req, size_t limit,
                     std::vector<v1::Alert>& alerts, v1::ListAlertsResponse* resp) {
    auto request = req;
    request.clear_page_token();
    request.set_page_size(static_cast<int32_t>(std::min<size_t>(limit, 1000)));
    env_.ask_every_member<v1::ListAlertsResponse>(
        call,
        [&](owner_stubs& stubs, grpc::ClientContext& ctx, v1::ListAlertsResponse& out, auto done) {
          stubs.alerts->async()->ListAlerts(&ctx, &request, &out, std::move(done));
        },
        [&](const std::string& member, const Status& st, v1::ListAlertsResponse& out) {
          if (!st.ok())
            return resp->add_unreachable_members(member);
          for (auto& x : *out.mutable_alerts())
            alerts.push_back(std::move(x));
        });
    std::sort(alerts.begin(), alerts.end(), [](const v1::Alert& x, const v1::Alert& y) {
      if (x.raise_time_ms() != y.raise_time_ms())
        return x.raise_time_ms() > y.raise_time_ms();
      return x.name() > y.name();
    });
  }

  // What acknowledging and resolving check alike: the alert's name (parsed
  // into `name`), who acts (`by`, from `stated_by` or the token), the note;
  // then access to the alert's tenant.
  static Status check_alert_action(rpc_call& rc, const std::string& alert, const char* by_field,
                                   const std::string& stated_by, const std::string& note,
                                   std::string& by, std::optional<models::alert_name>& name) {
    std::vector<field_violation> bad;
    name = models::parse_alert_name(alert);
    if (!name)
      bad.push_back({"name", "must be tenants/{tenant}/{patients|devices}/{id}/alerts/{alert}"});
    by = acting_as(rc, stated_by, by_field, bad);
    if (!valid_note(note, max_note_bytes))
      bad.push_back({"note", "must be at most 1000 characters, without control characters other "
                             "than line feed and tab"});
    if (!bad.empty())
      return invalid_argument(bad);
    rc.resource = alert;
    return rc.allow({name->tenant, {}});
  }

  service_env& env_;
};

}  // namespace

grpc::Status parse_alert_filter(const std::string& parent, const std::string& ward, v1::Priority min,
                                const std::string& patient, actors::alert_filter& out) {
  std::vector<field_violation> bad;
  auto tenant = models::parse_tenant_name(parent);
  if (!tenant)
    bad.push_back({"parent", "must be tenants/{tenant}"});
  if (!patient.empty()) {
    auto p = models::parse_twin_name(patient);
    if (!p || p->kind != models::twin_kind::patient || (tenant && p->tenant != *tenant))
      bad.push_back({"patient", "must be a patient of the parent: tenants/{tenant}/patients/{patient}"});
  }
  if (!valid_label(ward, 64, true))
    bad.push_back({"ward", "must be at most 64 characters without control characters"});
  if (min < v1::PRIORITY_UNSPECIFIED || min > v1::PRIORITY_HIGH)
    bad.push_back({"min_priority", "must be a known Priority"});
  if (!bad.empty())
    return invalid_argument(bad);
  out.tenant = std::string{*tenant};
  out.ward = ward;
  out.min_priority = static_cast<models::priority>(min);
  out.patient = patient;
  return Status::OK;
}


std::unique_ptr<grpc::Service> make_alert_service(service_env& env) {
  return std::make_unique<alert_service>(env);
}

}  // namespace healthtwin::services
