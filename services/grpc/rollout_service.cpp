// RolloutService: firmware rollouts (rollout_manager.hpp) — names checked,
// callers' access, then the node's rollout manager.

#include "healthtwin/v1/rollout.grpc.pb.h"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/rollout_manager.hpp"
#include "services/grpc/service_env.hpp"

namespace healthtwin::services {

namespace {

using grpc::ServerContext;
using grpc::Status;

constexpr std::string_view rollouts_part = "/rollouts/";

// tenants/{tenant}/rollouts/{id}: the tenant, or nullopt.
std::optional<std::string> tenant_of_rollout(const std::string& name) {
  auto at = name.find(rollouts_part);
  if (at == std::string::npos)
    return std::nullopt;
  auto tenant = models::parse_tenant_name(std::string_view{name}.substr(0, at));
  if (!tenant || !models::is_valid_id(std::string_view{name}.substr(at + rollouts_part.size())))
    return std::nullopt;
  return std::string{*tenant};
}

class rollout_service final : public v1::RolloutService::Service {
public:
  explicit rollout_service(service_env& env) : env_(env) {}

  Status CreateRollout(ServerContext* call, const v1::CreateRolloutRequest* req, v1::Rollout* resp) override {
    return env_.serve(call, "RolloutService/CreateRollout", [&](rpc_call& rc) -> Status {
      std::vector<field_violation> bad;
      auto tenant = models::parse_tenant_name(req->parent());
      if (!tenant)
        bad.push_back({"parent", "must be tenants/{tenant}"});
      if (!models::is_valid_id(req->rollout_id()))
        bad.push_back({"rollout_id", "must be 1-63 characters of [a-z0-9-], starting with a letter or digit"});
      if (!bad.empty())
        return invalid_argument(bad);
      auto name = req->parent() + std::string{rollouts_part} + req->rollout_id();
      rc.resource = name;
      // In a cluster the member owning the name's shard holds the rollout.
      return env_.at_owner(
          call, rc.allow({*tenant, {}}), name,
          [&](owner_stubs& s, grpc::ClientContext& cc) { return s.rollouts->CreateRollout(&cc, *req, resp); },
          [&] {
            return with_manager([&](rollout_manager& m) {
              return m.create(std::string{*tenant}, name, req->rollout(), rc.who->subject,
                              models::wall_clock_ms(), resp);
            });
          });
    });
  }

  Status GetRollout(ServerContext* call, const v1::GetRolloutRequest* req, v1::Rollout* resp) override {
    return about_rollout(
        call, "RolloutService/GetRollout", req->name(),
        [&](owner_stubs& s, grpc::ClientContext& cc) { return s.rollouts->GetRollout(&cc, *req, resp); },
        [&](rollout_manager& m, rpc_call&) { return m.get(req->name(), resp); });
  }

  Status ListRollouts(ServerContext* call, const v1::ListRolloutsRequest* req,
                      v1::ListRolloutsResponse* resp) override {
    return env_.serve(call, "RolloutService/ListRollouts", [&](rpc_call& rc) -> Status {
      auto tenant = models::parse_tenant_name(req->parent());
      if (!tenant)
        return invalid_argument("parent", "must be tenants/{tenant}");
      if (auto st = rc.allow({*tenant, {}}); !st.ok())
        return st;
      auto st = with_manager([&](rollout_manager& m) {
        for (auto& r : m.list(std::string{*tenant}))
          *resp->add_rollouts() = std::move(r);
        return Status::OK;
      });
      // In a cluster, every member's own (a forwarded call answers its own).
      if (!st.ok() || !env_.ctx.forwarding || call->client_metadata().count(forwarded_by_header))
        return st;
      env_.ask_every_member<v1::ListRolloutsResponse>(
          call,
          [&](owner_stubs& s, grpc::ClientContext& cc, v1::ListRolloutsResponse& out, auto done) {
            s.rollouts->async()->ListRollouts(&cc, req, &out, std::move(done));
          },
          [&](const std::string& member, const Status& answer, v1::ListRolloutsResponse& out) {
            if (!answer.ok())
              return resp->add_unreachable_members(member);
            for (auto& r : *out.mutable_rollouts())
              *resp->add_rollouts() = std::move(r);
          });
      std::stable_sort(resp->mutable_rollouts()->begin(), resp->mutable_rollouts()->end(),
                       [](auto& a, auto& b) { return to_ms(a.create_time()) > to_ms(b.create_time()); });
      return st;
    });
  }

  Status PauseRollout(ServerContext* call, const v1::RolloutActionRequest* req, v1::Rollout* resp) override {
    return about_rollout(
        call, "RolloutService/PauseRollout", req->name(),
        [&](owner_stubs& s, grpc::ClientContext& cc) { return s.rollouts->PauseRollout(&cc, *req, resp); },
        [&](rollout_manager& m, rpc_call& rc) {
          return m.pause(req->name(), rc.who->subject, models::wall_clock_ms(), resp);
        });
  }

  Status ResumeRollout(ServerContext* call, const v1::RolloutActionRequest* req, v1::Rollout* resp) override {
    return about_rollout(
        call, "RolloutService/ResumeRollout", req->name(),
        [&](owner_stubs& s, grpc::ClientContext& cc) { return s.rollouts->ResumeRollout(&cc, *req, resp); },
        [&](rollout_manager& m, rpc_call&) { return m.resume(req->name(), models::wall_clock_ms(), resp); });
  }

  Status CancelRollout(ServerContext* call, const v1::RolloutActionRequest* req, v1::Rollout* resp) override {
    return about_rollout(
        call, "RolloutService/CancelRollout", req->name(),
        [&](owner_stubs& s, grpc::ClientContext& cc) { return s.rollouts->CancelRollout(&cc, *req, resp); },
        [&](rollout_manager& m, rpc_call& rc) {
          return m.cancel(req->name(), rc.who->subject, models::wall_clock_ms(), resp);
        });
  }

  Status OverrideRolloutGate(ServerContext* call, const v1::OverrideRolloutGateRequest* req,
                             v1::Rollout* resp) override {
    return env_.serve(call, "RolloutService/OverrideRolloutGate", [&](rpc_call& rc) -> Status {
      std::vector<field_violation> bad;
      auto tenant = tenant_of_rollout(req->name());
      if (!tenant)
        bad.push_back({"name", "must be tenants/{tenant}/rollouts/{rollout}"});
      auto device = models::parse_twin_name(req->device());
      if (!device || device->kind != models::twin_kind::device || (tenant && device->tenant != *tenant))
        bad.push_back({"device", "must be tenants/{tenant}/devices/{device} of the rollout's tenant"});
      if (!valid_note(req->reason(), 256) || req->reason().empty())
        bad.push_back({"reason", "must be 1-256 characters without control characters"});
      if (!bad.empty())
        return invalid_argument(bad);
      rc.resource = req->name();
      return env_.at_owner(
          call, rc.allow({*tenant, {}}), req->name(),
          [&](owner_stubs& s, grpc::ClientContext& cc) { return s.rollouts->OverrideRolloutGate(&cc, *req, resp); },
          [&] {
            return with_manager([&](rollout_manager& m) {
              return m.override_gate(req->name(), req->device(), rc.who->subject, req->reason(),
                                     models::wall_clock_ms(), resp);
            });
          });
    });
  }

private:
  // A call about one rollout, `name` (request field "name"): its form and
  // the caller's access, then `remote(stubs, context)` at the member holding
  // it (the owner of the name's shard) or `fn(manager, rc)` here.
  template <class Remote, class Fn>
  Status about_rollout(ServerContext* call, std::string_view rpc, const std::string& name, Remote&& remote,
                       Fn&& fn) {
    return env_.serve(call, rpc, [&](rpc_call& rc) -> Status {
      auto tenant = tenant_of_rollout(name);
      if (!tenant)
        return invalid_argument("name", "must be tenants/{tenant}/rollouts/{rollout}");
      rc.resource = name;
      return env_.at_owner(call, rc.allow({*tenant, {}}), name, std::forward<Remote>(remote),
                           [&] { return with_manager([&](rollout_manager& m) { return fn(m, rc); }); });
    });
  }

  template <class Fn>
  Status with_manager(Fn&& fn) {
    if (!env_.rollouts)
      return Status(grpc::StatusCode::UNAVAILABLE, "firmware rollouts are not running on this node");
    return fn(*env_.rollouts);
  }

  service_env& env_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_rollout_service(service_env& env) {
  return std::make_unique<rollout_service>(env);
}

}  // namespace healthtwin::services
