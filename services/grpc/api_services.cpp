#include "services/grpc/api_services.hpp"

#include <thread>

#include "services/grpc/alert_stream.hpp"
#include "services/grpc/grpc_probe.hpp"
#include "services/grpc/rollout_manager.hpp"
#include "services/grpc/service_env.hpp"
#include "actors/cluster/membership.hpp"
#include "services/grpc/status_mapping.hpp"
#include "services/grpc/token_verifier.hpp"
#include "storage/errc.hpp"
#include "storage/registry.hpp"

#include <spdlog/spdlog.h>

namespace healthtwin::services {

grpc::Status rpc_call::allow(const call_scope& scope) {
  access_checked = true;
  if (resource.empty())
    resource = scope.tenant.empty() ? std::string{} : "tenants/" + std::string{scope.tenant};
  if (!who)  // serve() authenticates first; defensive
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no verified token");
  auto why = check_access(*who, row, rpc, scope);
  if (!why.empty())
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why);
  return grpc::Status::OK;
}

grpc::Status call_frame::admit(const grpc::ServerContextBase* call, rpc_call& rc) const {
  if (!ready())
    return not_ready();
  auto st = authenticate(call, rc);
  size_t members = 0;
  auto map = state_.ctx.members->map();
  for (uint32_t m = 0; m < map->members().size(); ++m)
    members += map->listed(m) ? 1 : 0;
  // Where a cluster answers the call: the RPC table's row (access_policy).
  if (st.ok() && members > 1 && (!rc.row || rc.row->in_cluster == cluster_route::single_node))
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this node is one of " + std::to_string(members) +
                            " cluster members, which do not serve " + std::string{rc.rpc} +
                            " yet: it spans members (docs/cluster.md)");
  return st;
}

grpc::Status owner_routing::owner_unreachable(const std::string& where, const std::string& why) {
  return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::owner_unreachable,
                     "the owner of " + where + " cannot be reached: " + why,
                     std::chrono::milliseconds(1000));
}

grpc::Status owner_routing::region_unreachable(const std::string& region, const std::string& why) {
  return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::owner_unreachable,
                     "region " + region + " cannot be reached: " + why, std::chrono::milliseconds(1000));
}

bool owner_routing::registered_here(std::string_view name) const {
  auto parsed = models::parse_twin_name(name);
  if (!parsed || !state_.ctx.store)
    return false;
  storage::registry reg{*state_.ctx.store};
  std::string n{name};
  if (parsed->kind == models::twin_kind::patient) {
    auto rec = reg.get_patient(n);
    return rec && *rec;
  }
  auto rec = reg.get_device(n);
  return rec && *rec;
}

std::string owner_routing::twin_kind_of(std::string_view name) {
  auto parsed = models::parse_twin_name(name);
  if (!parsed)
    return {};
  return parsed->kind == models::twin_kind::patient  ? "patient"
         : parsed->kind == models::twin_kind::device ? "device"
                                                     : "";
}

void owner_routing::prepare_region_forwarded(const grpc::ServerContextBase* call,
                                             grpc::ClientContext& out) const {
  out.set_deadline(std::chrono::system_clock::now() + frame_.forward_timeout(call));
  on_callers_behalf(call, out, region_forwarded_header, regions->settings().self);
}

grpc::Status owner_routing::not_owner_here(const std::string& field) {
  return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::shard_moving,
                     field + ": this member does not own its shard (a hand-off in progress, or "
                             "the members' states differ); retry",
                     std::chrono::milliseconds(500));
}

grpc::Status call_frame::authenticate(const grpc::ServerContextBase* call, rpc_call& rc) const {
  auto& md = call->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end())
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "metadata authorization: missing (send \"Bearer <JWT>\")");
  std::string_view value{it->second.data(), it->second.size()};
  constexpr std::string_view scheme{"Bearer "};
  if (value.substr(0, scheme.size()) != scheme)
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "metadata authorization: must be \"Bearer <JWT>\"");
  auto v = state_.ctx.tokens->verify(value.substr(scheme.size()), now_ms() / 1000);
  if (!v.who)
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bearer token refused: " + v.error);
  rc.who = std::move(v.who);
  return grpc::Status::OK;
}

storage::audit_entry call_frame::audit_entry_for(const grpc::ServerContextBase* call,
                                                  const rpc_call& rc,
                                                  const grpc::Status& outcome) const {
  storage::audit_entry e;
  // Tenant and subject, or the peer address of a caller that never proved who it is.
  e.principal = rc.who ? rc.who->tenant + "/" + rc.who->subject : "unauthenticated@" + call->peer();
  // A read made in process on a caller's behalf by a composite export
  // (FHIR) names it: "h1/nurse via fhir-export". Only calls made inside
  // this process know its secret (the JSON gateway passes on nothing but
  // the token).
  if (auto& md = call->client_metadata(); rc.who)
    if (auto via = md.find(std::string{composed_by_header}); via != md.end()) {
      std::string_view v{via->second.data(), via->second.size()};
      auto& secret = in_process_secret();
      if (v.size() > secret.size() + 1 && v.size() <= secret.size() + 33 && v.ends_with(secret) &&
          v[v.size() - secret.size() - 1] == ' ')
        e.principal += " via " + std::string{v.substr(0, v.size() - secret.size() - 1)};
    }
  e.resource = rc.resource;
  e.action = std::string{rc.rpc};
  e.outcome = code_name(outcome.error_code());
  e.time_ms = now_ms();
  return e;
}

grpc::Status call_frame::audited(const grpc::ServerContextBase* call, const rpc_call& rc,
                                  grpc::Status outcome) {
  if (outcome.ok() && !rc.access_checked) {
    spdlog::error("{} answered without an access check", rc.rpc);
    outcome = grpc::Status(grpc::StatusCode::INTERNAL, "access was not checked");
  }
  return audit_outcome(outcome, state_.ctx.audit->append(audit_entry_for(call, rc, outcome)));
}

grpc::Status call_frame::audit_stream_opened(const grpc::ServerContextBase* call,
                                              const rpc_call& rc) {
  auto opened = audit_entry_for(call, rc, grpc::Status::OK);
  opened.outcome = "OPENED";
  if (auto err = state_.ctx.audit->append(opened)) {
    spdlog::error("audit: recording a stream's opening failed: {}", storage::describe(err));
    return grpc::Status(grpc::StatusCode::INTERNAL, "the stream's audit entry could not be written");
  }
  return grpc::Status::OK;
}

grpc::Status call_frame::within_rate(const principal& who, size_t readings) {
  bool device = has(who.roles, role::device);
  auto& limiter = readings == 0 ? *call_rate : device ? *device_reading_rate : *reading_rate;
  auto key = who.tenant + "/" + (device ? who.device : who.subject);
  auto wait = limiter.take(key, readings == 0 ? 1.0 : static_cast<double>(readings));
  if (wait.count() == 0)
    return grpc::Status::OK;
  auto why = readings == 0 ? refusal::rate_limit_calls
             : device      ? refusal::rate_limit_device_readings
                           : refusal::rate_limit_readings;
  return retry_later(grpc::StatusCode::RESOURCE_EXHAUSTED, why,
                     std::string{"rate limit: at most "} + std::to_string(static_cast<int64_t>(limiter.rate())) +
                         (readings == 0 ? " calls" : " readings") + " per second for this " +
                         (device ? "device" : "caller"),
                     wait);
}

grpc::Status allow_patient(rpc_call& rc, const std::string& name, const char* field) {
  auto parsed = models::parse_twin_name(name);
  if (!parsed || parsed->kind != models::twin_kind::patient)
    return invalid_argument(field, "must be tenants/{tenant}/patients/{patient}");
  if (rc.resource.empty())
    rc.resource = name;
  return rc.allow({parsed->tenant, {}});
}

grpc::Status check_patient(service_env& env, rpc_call& rc, const std::string& name,
                           const char* field) {
  if (auto st = allow_patient(rc, name, field); !st.ok())
    return st;
  auto rec = storage::registry{*env.ctx.store}.get_patient(name);
  if (!rec)
    return to_status(rec.error());
  if (!*rec)
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "patient not found");
  return grpc::Status::OK;
}

grpc::Status allow_device(rpc_call& rc, const std::string& name, const char* field) {
  auto parsed = models::parse_twin_name(name);
  if (!parsed || parsed->kind != models::twin_kind::device)
    return invalid_argument(field, "must be tenants/{tenant}/devices/{device}");
  rc.resource = name;
  return rc.allow({parsed->tenant, {parsed->id}});
}

grpc::Status find_device(service_env& env, rpc_call& rc, const std::string& name, const char* field,
                         storage::device_record& out) {
  if (auto st = allow_device(rc, name, field); !st.ok())
    return st;
  auto rec = storage::registry{*env.ctx.store}.get_device(name);
  if (!rec)
    return to_status(rec.error());
  if (!*rec)
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "device not found");
  out = std::move(**rec);
  return grpc::Status::OK;
}

struct api_services::impl {
  service_env env;
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::unique_ptr<rollout_facts> facts;
  std::unique_ptr<rollout_manager> rollouts;     // stopped first
};

api_services::api_services(api_settings settings, api_context context)
    : impl_(std::make_unique<impl>()) {
  impl_->env.settings = std::move(settings);
  impl_->env.ctx = std::move(context);
  auto& env = impl_->env;
  auto& st = env.settings;
  env.call_rate = std::make_unique<rate_limiter>(st.principal_calls_per_s, 2 * st.principal_calls_per_s);
  env.reading_rate =
      std::make_unique<rate_limiter>(st.principal_readings_per_s, 2 * st.principal_readings_per_s);
  env.device_reading_rate =
      std::make_unique<rate_limiter>(st.device_readings_per_s, 2 * st.device_readings_per_s);
  if (env.ctx.forwarding) {
    auto& c = env.ctx;
    env.handoff = std::make_unique<shard_handoff>(handoff_parts{
        c.sys, c.store, c.sequencer, c.alert_hub, c.index, c.ready, c.members, c.forwarding,
        c.cluster_probe}, env.settings.handoff);
    env.ctx.members->before_gaining(
        [h = env.handoff.get()](const std::vector<uint32_t>& shards) { h->before_gaining(shards); });
  }
  if (!st.regions.self.empty())
    env.regions = std::make_unique<region_links>(st.regions);
  impl_->services.push_back(make_registry_service(env));
  impl_->services.push_back(make_ingest_service(env));
  impl_->services.push_back(make_twin_service(env));
  impl_->services.push_back(make_alert_service(env));
  impl_->services.push_back(make_clinical_service(env));
  impl_->services.push_back(make_fhir_service(env));
  impl_->services.push_back(make_cluster_service(env));
  impl_->services.push_back(make_rollout_service(env));
  if (env.ctx.store && env.ctx.sequencer) {
    // In a cluster each member holds the rollouts of the shards it owns;
    // they move with their shard (docs/rollouts.md).
    impl_->facts = make_node_rollout_facts(env);
    impl_->rollouts = std::make_unique<rollout_manager>(
        *env.ctx.store, *impl_->facts, st.rollout_step,
        [&env](const std::string& name) { return !env.owned_elsewhere(name); });
    if (auto err = impl_->rollouts->start(env.ctx.ready))
      spdlog::error("rollouts: the stored rollouts could not be read ({}); none run", storage::describe(err));
    else
      env.rollouts = impl_->rollouts.get();
    if (env.handoff && env.rollouts) {
      auto* m = env.rollouts;
      env.handoff->set_residents(
          {[m](const shard_residents::names& in) { m->let_go(in); },
           [m](const shard_residents::names& in) {
             if (auto err = m->take_up(in))
               spdlog::error("rollouts: the rollouts of shards taken up could not be read: {}",
                             storage::describe(err));
           },
           [m](const shard_residents::names& in) { m->gone(in); }});
    }
  }
  if (env.ctx.metrics) {
    count_refusals_in(*env.ctx.metrics);
    env.watches.metrics.register_in(*env.ctx.metrics);
  }
}

api_services::~api_services() {
  if (impl_->env.handoff)  // the membership outlives this object
    impl_->env.ctx.members->before_gaining({});
}

void api_services::register_with(grpc::ServerBuilder& builder) {
  for (auto& s : impl_->services)
    builder.RegisterService(s.get());
  // Metadata up to the request size limit reaches authenticate(), which
  // refuses a token over 8 KiB with UNAUTHENTICATED: at gRPC's default 8 KiB
  // limit an oversized token was refused by the transport, which then
  // closed the connection under the client's next call (UNAVAILABLE).
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, static_cast<int>(max_metadata_bytes));
  if (impl_->env.ctx.metrics) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> probes;
    probes.push_back(make_grpc_probe(*impl_->env.ctx.metrics));
    builder.experimental().SetInterceptorCreators(std::move(probes));
  }
}

int api_services::shutdown(std::chrono::milliseconds grace) {
  auto& env = impl_->env;
  env.stopping = true;
  if (impl_->rollouts)
    impl_->rollouts->stop();
  std::vector<std::function<void()>> pending;
  {
    std::lock_guard<std::mutex> guard{env.streams_mtx};
    for (auto* s : env.streams)
      pending.push_back(s->drain());
  }
  for (auto& p : pending)
    if (p)
      p();
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (env.active_calls.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return env.active_calls.load();
}

void api_services::on_ownership_change(const cluster::ownership_change& change) {
  if (impl_->env.handoff)
    impl_->env.handoff->on_change(change);
}

void api_services::drop_owed_shards() {
  if (impl_->env.handoff)
    impl_->env.handoff->drop_owed();
}

peer_handlers api_services::peer_data() {
  auto* env = &impl_->env;
  peer_handlers h;
  h.summaries = [env](const internal::SummaryQuery& q, internal::SummaryList* out) {
    return local_summaries(*env, q, out);
  };
  h.apply_patient_parts = [env](const grpc::ServerContext& call, const internal::PatientParts& req,
                                internal::PatientPartsAck* out) {
    return apply_patient_parts(*env, call, req, out);
  };
  h.link_device = [env](const grpc::ServerContext& call, const internal::DeviceLink& req) {
    return link_device(*env, call, req);
  };
  h.release_devices = [env](const grpc::ServerContext& call, const internal::DeviceRelease& req) {
    return release_devices(*env, call, req);
  };
  if (env->handoff) {
    auto* handoff = env->handoff.get();
    h.update_state = [handoff](const internal::ClusterStateRecord& req,
                               internal::ClusterStateRecord* resp) {
      return handoff->update_state(req, resp);
    };
    h.hand_off = [handoff](const grpc::ServerContext&, const internal::HandOffRequest& req,
                           internal::HandOffReport* resp) { return handoff->hand_off(req, resp); };
    h.receive_shard = [handoff](grpc::ServerContext& call,
                                grpc::ServerReader<internal::ShardChunk>* reader,
                                internal::ShardReceipt* resp) {
      return handoff->receive(call, reader, resp);
    };
  }
  h.rollout_facts = [env](const internal::RolloutFactsRequest& req, internal::RolloutFactsReply* out) {
    return rollout_facts_here(*env, req, out);
  };
  h.target_firmware = [env](const internal::FirmwareTarget& req) { return target_firmware_here(*env, req); };
  h.follow_alerts = [env](grpc::ServerContext& call, const internal::AlertFollowRequest& req,
                          grpc::ServerWriter<v1::AlertEvent>* writer) {
    return follow_alerts(*env, call, req, writer);  // alert_stream.cpp
  };
  h.audited = [env](std::string principal, std::string action, std::string resource,
                     grpc::Status outcome) {
    storage::audit_entry e;
    e.principal = std::move(principal);
    e.action = std::move(action);
    e.resource = std::move(resource);
    e.outcome = code_name(outcome.error_code());
    e.time_ms = service_env::now_ms();
    return audit_outcome(outcome, env->ctx.audit->append(e));
  };
  return h;
}

}  // namespace healthtwin::services
