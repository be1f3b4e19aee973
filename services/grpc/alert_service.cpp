#include <atomic>
#include <charconv>
#include <condition_variable>
#include <future>
#include <thread>

#include "actors/alerts/alert_hub.hpp"
#include "healthtwin/v1/alert.grpc.pb.h"
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
    return env_.serve(call, "AlertService/StreamAlerts", [&](rpc_call& rc) -> Status {
      actors::alert_filter filter;
      if (auto st = parse_filter(req->parent(), req->ward(), req->min_priority(), req->patient(), filter); !st.ok())
        return st;
      if (auto st = rc.allow({filter.tenant, {}}); !st.ok())
        return st;
      // In a cluster: a patient's alerts come from its owner; a tenant's are
      // merged from every member (docs/cluster.md). A forwarded call is
      // answered from this member alone.
      std::unique_ptr<member_streams> others;
      if (env_.ctx.forwarding && !call->client_metadata().count(forwarded_by_header)) {
        if (!filter.patient.empty() && env_.owned_elsewhere(filter.patient)) {
          if (auto st = env_.audit_stream_opened(call, rc); !st.ok())
            return st;
          // Resume tokens are the owner's; ends when the caller or the owner ends it.
          return *env_.relay(call, filter.patient, writer, [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.alerts->StreamAlerts(&c, *req);
          });
        }
        if (filter.patient.empty()) {
          if (req->has_resume_after())
            return invalid_argument("resume_after",
                                    "a cluster's members number their events each on their own: "
                                    "resume a patient's stream, or reconnect without it and catch "
                                    "up with ListAlerts");
          others = std::make_unique<member_streams>(env_, call, *req);
        }
      }
      if (auto st = env_.audit_stream_opened(call, rc); !st.ok())
        return st;
      auto sink = std::make_shared<actors::alert_sink>(filter);
      auto last = env_.ask<uint64_t>(env_.ctx.alert_hub, env_.settings.call_timeout,
                                     actors::alert_sub_atom::value, sink);
      if (!last)
        return to_status(last.error());
      auto unsubscribe = [&] {
        sink->close();
        caf::anon_send(env_.ctx.alert_hub, actors::alert_unsub_atom::value, sink);
      };
      uint64_t sent = req->has_resume_after() ? req->resume_after() : *last;
      if (req->has_resume_after() && req->resume_after() > *last) {
        unsubscribe();
        return invalid_argument("resume_after", "is beyond the newest event of this node");
      }
      // Replay what the subscriber missed, from the store, then go live: the
      // hub pushes only events after *last into the sink.
      if (req->has_resume_after()) {
        bool ok = true;
        storage::alert_table table{*env_.ctx.store};
        auto err = table.scan_events(req->resume_after(), [&](uint64_t seq, std::string_view bytes) {
          if (seq > *last)
            return false;
          actors::alert_event e;
          if (!actors::parse(bytes, e))
            return true;
          if (filter.matches(e.alert)) {
            v1::AlertEvent out;
            to_api(e, &out);
            ok = writer->Write(out);
          }
          sent = seq;
          return ok;
        });
        if (err || !ok) {
          unsubscribe();
          return err ? to_status(err) : Status(grpc::StatusCode::CANCELLED, "client went away");
        }
      }
      while (!call->IsCancelled() && !env_.stopping) {
        if (others) {  // other members' events first, as they came
          bool ok = true;
          for (auto& x : others->take())
            ok = ok && writer->Write(x);
          if (!ok)
            break;
        }
        auto e = sink->pop(std::chrono::milliseconds(others ? 50 : 200));
        if (!e) {
          if (sink->overflowed()) {
            unsubscribe();
            return retry_later(grpc::StatusCode::RESOURCE_EXHAUSTED, refusal::subscriber_behind,
                               "subscriber fell behind; reconnect with resume_after=" +
                                   std::to_string(sent),
                               std::chrono::milliseconds(100));
          }
          continue;
        }
        v1::AlertEvent out;
        to_api(*e, &out);
        if (!writer->Write(out))
          break;
        sent = e->sequence;
      }
      unsubscribe();
      if (env_.stopping)
        return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::shutting_down,
                           "node is shutting down; reconnect with resume_after=" + std::to_string(sent),
                           std::chrono::milliseconds(1000));
      return Status::OK;
    });
  }

  Status ListAlerts(ServerContext* call, const v1::ListAlertsRequest* req,
                    v1::ListAlertsResponse* resp) override {
    return env_.serve(call, "AlertService/ListAlerts", [&](rpc_call& rc) -> Status {
      actors::alert_filter filter;
      if (auto st = parse_filter(req->parent(), req->ward(), req->min_priority(), req->patient(), filter);
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
      if (!filter.patient.empty())
        if (auto fwd = env_.forward(call, filter.patient, [&](owner_stubs& s, grpc::ClientContext& c) {
              return s.alerts->ListAlerts(&c, *req, resp);
            }))
          return *fwd;
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
      if (auto fwd = env_.forward(call, name->owner, [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.alerts->AcknowledgeAlert(&c, *req, resp);
          }))
        return *fwd;
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
      if (auto fwd = env_.forward(call, name->owner, [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.alerts->ResolveAlert(&c, *req, resp);
          }))
        return *fwd;
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
      if (auto st = allow_patient(rc, req->patient(), "patient"); !st.ok())
        return st;
      if (auto fwd = env_.forward(call, req->patient(), [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.alerts->SilenceAlerts(&c, *req, resp);
          }))
        return *fwd;
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
      auto silenced_by = acting_as(rc, req->silenced_by());
      if (!valid_label(silenced_by, 128))
        bad.push_back({"silenced_by", "must be 1-128 characters without control characters"});
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
  }

private:
  // A merged StreamAlerts' feed from every other member: one thread per
  // member keeps a forwarded StreamAlerts open there (reconnecting every
  // second while it is down, resuming after the last event it had from it,
  // so a member's restart loses none of its events), and queues its events
  // for the caller's stream, which alone writes.
  class member_streams {
  public:
    member_streams(service_env& env, const grpc::ServerContextBase* call,
                   const v1::StreamAlertsRequest& req) {
      auto& fwd = *env.ctx.forwarding;
      for (auto m : fwd.others())
        threads_.emplace_back([this, &env, &fwd, call, req, m] { follow(env, fwd, call, req, m); });
    }

    ~member_streams() {
      {
        std::lock_guard<std::mutex> g{mtx_};
        stopping_ = true;
        for (auto* c : open_)
          c->TryCancel();
      }
      wake_.notify_all();
      for (auto& t : threads_)
        t.join();
    }

    std::vector<v1::AlertEvent> take() {
      std::lock_guard<std::mutex> g{mtx_};
      std::vector<v1::AlertEvent> out;
      out.swap(events_);
      return out;
    }

  private:
    void follow(service_env& env, owner_forwarding& fwd, const grpc::ServerContextBase* call,
                v1::StreamAlertsRequest req, uint32_t m) {
      for (;;) {
        auto stubs = fwd.stubs(m);
        if (stubs) {
          grpc::ClientContext ctx;
          env.prepare_forwarded(call, ctx, true);
          {
            std::lock_guard<std::mutex> g{mtx_};
            if (stopping_)
              return;
            open_.push_back(&ctx);
          }
          auto reader = stubs->alerts->StreamAlerts(&ctx, req);
          v1::AlertEvent e;
          while (reader->Read(&e)) {
            req.set_resume_after(e.resume_token());
            std::lock_guard<std::mutex> g{mtx_};
            if (events_.size() < 10'000)  // the caller's stream fell behind: drop
              events_.push_back(e);
          }
          auto st = reader->Finish();
          if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
            req.clear_resume_after();  // it lost events it numbered (a wiped member)
          std::lock_guard<std::mutex> g{mtx_};
          open_.erase(std::find(open_.begin(), open_.end(), &ctx));
        }
        std::unique_lock<std::mutex> lock{mtx_};
        if (wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; }))
          return;
      }
    }

    std::mutex mtx_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::vector<grpc::ClientContext*> open_;
    std::vector<v1::AlertEvent> events_;
    std::vector<std::thread> threads_;
  };

  // Adds the first `limit` alerts of every other member (ListAlerts made
  // there as forwarded calls, in parallel, within the caller's deadline) to
  // `alerts`, newest first as the hub orders them; names the members that
  // did not answer in resp.unreachable_members.
  void gather_alerts(ServerContext* call, const v1::ListAlertsRequest& req, size_t limit,
                     std::vector<v1::Alert>& alerts, v1::ListAlertsResponse* resp) {
    auto& fwd = *env_.ctx.forwarding;
    struct answer {
      uint32_t member;
      grpc::ClientContext context;
      v1::ListAlertsRequest request;
      v1::ListAlertsResponse response;
      std::promise<grpc::Status> done;
    };
    std::vector<std::unique_ptr<answer>> answers;
    for (auto m : fwd.others()) {
      auto& a = *answers.emplace_back(std::make_unique<answer>());
      a.member = m;
      auto stubs = fwd.stubs(m);
      if (!stubs) {
        a.done.set_value(Status(grpc::StatusCode::UNAVAILABLE, "not reached yet"));
        continue;
      }
      a.request = req;
      a.request.clear_page_token();
      a.request.set_page_size(static_cast<int32_t>(std::min<size_t>(limit, 1000)));
      env_.prepare_forwarded(call, a.context);
      stubs->alerts->async()->ListAlerts(&a.context, &a.request, &a.response,
                                         [&a](Status st) { a.done.set_value(std::move(st)); });
    }
    for (auto& a : answers) {
      auto st = a->done.get_future().get();  // each call ends by its deadline
      if (!st.ok()) {
        resp->add_unreachable_members(fwd.member_name(a->member));
        continue;
      }
      for (auto& x : *a->response.mutable_alerts())
        alerts.push_back(std::move(x));
    }
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
    by = acting_as(rc, stated_by);
    if (!valid_label(by, 128))
      bad.push_back({by_field, "must be 1-128 characters without control characters"});
    if (!valid_note(note, max_note_bytes))
      bad.push_back({"note", "must be at most 1000 characters, without control characters other "
                             "than line feed and tab"});
    if (!bad.empty())
      return invalid_argument(bad);
    rc.resource = alert;
    return rc.allow({name->tenant, {}});
  }

  Status parse_filter(const std::string& parent, const std::string& ward, v1::Priority min,
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

  service_env& env_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_alert_service(service_env& env) {
  return std::make_unique<alert_service>(env);
}

}  // namespace healthtwin::services
