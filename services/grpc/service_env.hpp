#pragma once
// Private to services/grpc: what every service implementation shares.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include <caf/all.hpp>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <grpcpp/impl/codegen/service_type.h>

#include "actors/cluster/membership.hpp"
#include "actors/index/twin_query.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "services/grpc/access_policy.hpp"
#include "services/grpc/api_services.hpp"
#include "services/grpc/field_rules.hpp"
#include "services/grpc/rate_limiter.hpp"
#include "services/peer/cluster_metrics.hpp"
#include "services/logging/json_log.hpp"
#include "services/peer/owner_forwarding.hpp"
#include "services/peer/shard_handoff.hpp"
#include "services/grpc/status_mapping.hpp"
#include "services/grpc/stream_watch.hpp"
#include "storage/registry.hpp"
#include "storage/audit_log.hpp"

namespace healthtwin::services {

/// A long-lived call that must end when the node stops (ingest streams).
struct drainable {
  virtual ~drainable() = default;
  /// Stop taking input; finish once what was accepted is acknowledged.
  /// Called with streams_mtx held: returns the gRPC calls to make after it
  /// is released (the stream stays alive until they ran).
  virtual std::function<void()> drain() = 0;
};

/// One call as the access policy and the audit log see it.
struct rpc_call {
  std::string_view rpc;                ///< "Service/Method", as in the policy table
  std::optional<principal> who;        ///< set once the token verified
  std::string resource;                ///< what the audit entry names
  bool access_checked = false;

  /// OK when the caller may call this RPC on `scope` (the policy table and
  /// tenant), PERMISSION_DENIED otherwise. Every handler calls it before it
  /// reads or changes anything; `resource` defaults to the tenant.
  grpc::Status allow(const call_scope& scope);
};

struct service_env {
  api_settings settings;
  api_context ctx;
  std::atomic<bool> stopping{false};
  /// Calls in progress (graceful shutdown waits for zero).
  std::atomic<int> active_calls{0};
  std::mutex streams_mtx;
  std::set<drainable*> streams;
  /// Per-principal limits (api_settings); set by api_services.
  std::unique_ptr<rate_limiter> call_rate, reading_rate, device_reading_rate;
  /// Shard hand-offs; set in a cluster (ctx.forwarding).
  std::unique_ptr<shard_handoff> handoff;
  /// Streams relayed from their owner, ended when their caller goes away.
  stream_watch relays;

  /// OK, or RESOURCE_EXHAUSTED with retry info when `who` is over its rate
  /// of calls (`readings` == 0) or of readings.
  grpc::Status within_rate(const principal& who, size_t readings = 0);

  /// Counts a synchronous call for its whole duration.
  struct call_guard {
    explicit call_guard(service_env& e) : env(e) { ++env.active_calls; }
    ~call_guard() { --env.active_calls; }
    service_env& env;
  };

  bool ready() const { return ctx.ready->load() && !stopping; }

  /// Verifies the call's bearer token ("authorization: Bearer ...");
  /// UNAUTHENTICATED says why when it is missing or refused.
  grpc::Status authenticate(const grpc::ServerContextBase* call, rpc_call& rc) const;

  /// The start of every call: UNAVAILABLE until the node is ready, then
  /// authenticate(). A member of a cluster of several nodes answers a call
  /// as its row of the RPC table says (access_policy.hpp, cluster_route);
  /// one not served in a cluster (or not in the table) gets
  /// FAILED_PRECONDITION: serving it here would split twins between nodes
  /// (docs/cluster.md).
  grpc::Status admit(const grpc::ServerContextBase* call, rpc_call& rc) const;

  /// When another member owns `name`'s shard: the answer of `invoke(stubs,
  /// context)` made there with the caller's token and deadline, UNAVAILABLE
  /// when that member cannot be reached. nullopt when this node owns it.
  /// Call after rc.allow() and before any local lookup.
  template <class Invoke>
  std::optional<grpc::Status> forward(const grpc::ServerContextBase* call, std::string_view name,
                                      Invoke&& invoke) {
    auto r = route(call, name);
    if (!r || r->refusal)
      return r ? r->refusal : std::nullopt;
    grpc::ClientContext out;
    prepare_forwarded(call, out);
    grpc::Status st = invoke(*r->stubs, out);
    if (ctx.cluster_probe)
      ctx.cluster_probe->on_forwarded("unary", st.error_code());
    return owner_answer(std::move(st), r->where);
  }

  /// The skeleton of a call about one twin, once its fields are checked:
  /// `allowed` (the caller's access, decided before anything is looked up)
  /// when it refuses; else, when another member owns `name`'s shard, that
  /// member's answer to `remote(stubs, context)`; else `local()` here.
  template <class Remote, class Local>
  grpc::Status at_owner(const grpc::ServerContextBase* call, grpc::Status allowed,
                        std::string_view name, Remote&& remote, Local&& local) {
    if (!allowed.ok())
      return allowed;
    if (auto fwd = forward(call, name, std::forward<Remote>(remote)))
      return *fwd;
    return local();
  }

  /// When another member owns `name`'s shard: opens the same server stream
  /// there (`open(stubs, context)` returns its reader, with the caller's
  /// token and deadline) and relays each message to `writer` until the
  /// caller, the owner or this node's stop ends it. The owner's final
  /// status; UNAVAILABLE (retry 1 s) when the owner cannot be reached or
  /// went away. nullopt when this node owns `name`.
  template <class Message, class Open>
  std::optional<grpc::Status> relay(const grpc::ServerContextBase* call, std::string_view name,
                                    grpc::ServerWriter<Message>* writer, Open&& open) {
    auto r = route(call, name);
    if (!r || r->refusal)
      return r ? r->refusal : std::nullopt;
    grpc::ClientContext out;
    prepare_forwarded(call, out, true);
    // The caller went away or the node stops: end it there too.
    auto watched = relays.watch([call, this] { return call->IsCancelled() || stopping.load(); },
                                [&out] { out.TryCancel(); });
    auto reader = open(*r->stubs, out);
    Message m;
    while (reader->Read(&m))
      if (!writer->Write(m)) {
        out.TryCancel();
        break;
      }
    auto st = reader->Finish();
    if (ctx.cluster_probe)
      ctx.cluster_probe->on_forwarded("stream", st.error_code());
    if (st.error_code() == grpc::StatusCode::CANCELLED && !call->IsCancelled() && !stopping)
      return owner_unreachable(r->where, st.error_message());  // the owner went away
    return owner_answer(std::move(st), r->where);
  }

  /// Where a call about `name` goes when another member owns its shard:
  /// that member's stubs, or the answer to give instead (forwarded here
  /// although this node does not own it either; the owner not reached
  /// yet). `where` names the shard and member. nullopt: this node owns it.
  struct owner_route {
    std::shared_ptr<owner_stubs> stubs;
    std::optional<grpc::Status> refusal;
    std::string where;
  };
  std::optional<owner_route> route(const grpc::ServerContextBase* call, std::string_view name) {
    if (!ctx.forwarding)
      return std::nullopt;
    auto owner = ctx.forwarding->remote_owner(name);
    if (!owner)
      return std::nullopt;
    owner_route r;
    r.where = "shard " + std::to_string(ctx.forwarding->shard(name)) + " (member " +
              ctx.forwarding->member_name(*owner) + ")";
    if (call->client_metadata().count(forwarded_by_header))
      r.refusal = owner_unreachable(r.where, "forwarded to a member that does not own it (a "
                                             "hand-off in progress, or the members' states differ)");
    else if (!(r.stubs = ctx.forwarding->stubs(*owner)))
      r.refusal = owner_unreachable(r.where, "not reached yet");
    return r;
  }

  /// True in a cluster when another member owns `name`'s shard.
  bool owned_elsewhere(std::string_view name) const {
    return ctx.forwarding && ctx.forwarding->remote_owner(name).has_value();
  }

  /// A call made on the caller's behalf to another member: the caller's
  /// token and deadline (forward_timeout(); for a stream, the caller's own deadline
  /// if it set one), marked as forwarded by this node.
  void prepare_forwarded(const grpc::ServerContextBase* call, grpc::ClientContext& out,
                         bool stream = false) const {
    if (!stream)
      out.set_deadline(std::chrono::system_clock::now() + forward_timeout(call));
    else if (call->deadline() != std::chrono::system_clock::time_point::max())
      out.set_deadline(call->deadline());
    auto& md = call->client_metadata();
    if (auto token = md.find("authorization"); token != md.end())
      out.AddMetadata("authorization", std::string{token->second.data(), token->second.size()});
    out.AddMetadata(forwarded_by_header, ctx.members->self_member().name);
    if (auto id = current_request_id(); !id.empty())  // the owner's log lines carry it too
      out.AddMetadata(std::string{request_id_header}, std::string{id});
  }

  /// Submits the readings of an ingest request that passed the stateless
  /// checks (ingest_validation): those of devices this node owns to its
  /// sequencer, the others to their owners in one call per owner
  /// (ingest_forwarding.cpp). `done` runs once, when every part answered,
  /// with rejections indexed as in the caller's request; readings whose
  /// owner could not be reached are rejected UNAVAILABLE (resend them).
  /// `whole`: the caller's request when every one of its readings is in
  /// `groups`; sent on as it is when one other member owns all its devices.
  void submit_ingest(const grpc::ServerContextBase* call, std::vector<actors::ingest_group>&& groups,
                     size_t readings, actors::ingest_sequencer::ingest_callback done,
                     std::shared_ptr<const v1::IngestRequest> whole = nullptr);

  /// When another member owns `patient`'s shard: has it add `device` to
  /// (attach) or remove it from the patient's device list (PeerService
  /// LinkDevice), before this node, the device's owner, changes the
  /// device. OK when this node owns the patient.
  grpc::Status link_elsewhere(const grpc::ServerContextBase* call, const std::string& patient,
                              const std::string& device, bool attach);

  /// Before this node, `patient`'s owner, erases it: has the members that
  /// own some of its devices detach them and purge the patient's name
  /// (PeerService ReleaseDevices). OK on a single node, when this node owns
  /// them all, or when the patient is not registered; UNAVAILABLE naming
  /// the member when one cannot be reached (nothing is erased then; a retry
  /// releases again).
  grpc::Status release_elsewhere(const grpc::ServerContextBase* call, const std::string& patient);

  /// UNAVAILABLE with retry info: the owner of `where` cannot be reached.
  static grpc::Status owner_unreachable(const std::string& where, const std::string& why);

  /// UNAVAILABLE with retry info for a member's call about a twin (request
  /// field `field`) whose shard this node does not own: it moved, or is
  /// moving (a hand-off), and the caller learns the owner soon.
  static grpc::Status not_owner_here(const std::string& field);

  /// What the caller gets for `st`, the answer of another member to a call
  /// made on its behalf: UNAVAILABLE naming `where` (`hint` appended to the
  /// reason) when that member could not be reached or did not answer in
  /// time; otherwise the member's own answer.
  static grpc::Status owner_answer(grpc::Status st, const std::string& where,
                                   const std::string& hint = {}) {
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
        st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      return owner_unreachable(where, st.error_message() + hint);
    return st;
  }

  /// A PeerService call on member `m` for the caller: `invoke(stub,
  /// context)` by `deadline`, answered as owner_answer() says (UNAVAILABLE
  /// too when there is no channel to it).
  template <class Invoke>
  grpc::Status call_peer(uint32_t m, const std::string& where,
                         std::chrono::system_clock::time_point deadline, Invoke&& invoke,
                         const std::string& hint = {}) {
    auto stub = ctx.forwarding->peer(m);
    if (!stub)
      return owner_unreachable(where, "no channel");
    grpc::ClientContext out;
    out.set_deadline(deadline);
    return owner_answer(invoke(*stub, out), where, hint);
  }

  /// The audit entry of a finished call.
  storage::audit_entry audit_entry_for(const grpc::ServerContextBase* call, const rpc_call& rc,
                                       const grpc::Status& outcome) const;

  /// Puts a stream's opening on record before anything is sent (a stream
  /// may last for hours; the frame records how it ended).
  grpc::Status audit_stream_opened(const grpc::ServerContextBase* call, const rpc_call& rc);

  /// Records the call and returns what the caller gets (audit_outcome).
  grpc::Status audited(const grpc::ServerContextBase* call, const rpc_call& rc, grpc::Status outcome);

  /// The frame of every synchronous RPC: counts the call, refuses it while
  /// not ready, authenticates, runs `body(rpc_call&)` and audits the outcome.
  template <class Body>
  grpc::Status serve(const grpc::ServerContextBase* call, std::string_view rpc, Body&& body) {
    call_guard guard{*this};
    request_scope request{request_id_of(call)};
    rpc_call rc{rpc, std::nullopt, {}, false};
    auto st = admit(call, rc);
    if (st.ok())
      st = within_rate(*rc.who);
    if (st.ok())
      st = body(rc);
    st = audited(call, rc, std::move(st));
    spdlog::debug("{} answered {}", rpc, code_name(st.error_code()));  // names no resource
    return st;
  }

  static int64_t now_ms() { return models::wall_clock_ms(); }

  /// The caller's x-request-id when it is a sane one, else a new id: what
  /// the lines logged while serving the call carry (services/logging).
  static std::string request_id_of(const grpc::ServerContextBase* call) {
    auto& md = call->client_metadata();
    auto it = md.find(grpc::string_ref{request_id_header.data(), request_id_header.size()});
    return request_id_or_new(it == md.end() ? std::string_view{}
                                            : std::string_view{it->second.data(), it->second.size()});
  }

  const actors::shard_actor& shard_for(std::string_view name) const {
    return (*ctx.shards)[models::shard_of(name, static_cast<uint32_t>(ctx.shards->size()))];
  }

  /// How long a call may wait: the node's call_timeout or the client's
  /// deadline, whichever comes first.
  std::chrono::milliseconds timeout(const grpc::ServerContextBase* call) const {
    auto limit = settings.call_timeout;
    auto deadline = call->deadline();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::system_clock::now());
    if (deadline != std::chrono::system_clock::time_point::max())
      limit = std::min(limit, std::max(left, std::chrono::milliseconds(1)));
    return limit;
  }

  /// timeout(call) less a margin to answer in (a tenth, at most 1 s): a
  /// call made to another member on the caller's behalf ends before the
  /// caller's deadline, so that its failure (a partitioned member answers
  /// nothing) still reaches the caller as UNAVAILABLE for its part, not as
  /// the caller's own DEADLINE_EXCEEDED.
  std::chrono::milliseconds forward_timeout(const grpc::ServerContextBase* call) const {
    auto t = timeout(call);
    return t - std::min(t / 10, std::chrono::milliseconds(1000));
  }

  /// Submits a registry command or clinician input to the sequencer and
  /// waits (within the call's timeout) until it is durable.
  template <class Command>
  actors::registry_result sequence(const grpc::ServerContextBase* call, Command&& cmd) {
    auto promise = std::make_shared<std::promise<actors::registry_result>>();
    auto future = promise->get_future();
    ctx.sequencer->submit(std::forward<Command>(cmd), [promise](actors::registry_result&& r) {
      promise->set_value(std::move(r));
    });
    if (future.wait_for(timeout(call)) != std::future_status::ready) {
      actors::registry_result r;
      r.error = caf::make_error(caf::sec::request_timeout);
      return r;
    }
    return future.get();
  }

  /// Asks an actor from a gRPC thread (one scoped_actor per call: a reused
  /// one would keep late answers of timed-out requests forever).
  template <class T, class Handle, class... Ts>
  caf::expected<T> ask(const Handle& dest, std::chrono::milliseconds timeout, Ts&&... xs) {
    caf::scoped_actor self{*ctx.sys};
    caf::expected<T> out{caf::make_error(caf::sec::request_timeout)};
    self->request(dest, timeout, std::forward<Ts>(xs)...)
        .receive([&](T& v) { out = std::move(v); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }
};

/// Whom a clinical action (acknowledge, resolve, silence, settings,
/// observations) is recorded as: a backend service names the clinician it
/// acts for in the request field (`stated`); anyone else acts as the token's
/// own subject, whatever the field says.
inline std::string acting_as(const rpc_call& rc, const std::string& stated) {
  if (rc.who && has(rc.who->roles, role::service) && !stated.empty())
    return stated;
  return rc.who ? rc.who->subject : stated;
}



/// OK when `name` (request field `field`) names a registered patient the
/// caller may reach: INVALID_ARGUMENT, PERMISSION_DENIED (checked before
/// existence, so other tenants learn nothing) or NOT_FOUND otherwise. Checked
/// before a call reaches a twin, so that no request activates a twin for a
/// patient that does not exist. Names the patient in the audit entry.
grpc::Status check_patient(service_env& env, rpc_call& rc, const std::string& name, const char* field);

/// The first half of check_patient: the name's form and the caller's access,
/// before any lookup (a forwarded call is looked up by its owner).
grpc::Status allow_patient(rpc_call& rc, const std::string& name, const char* field);

/// OK when `name` (request field `field`) names a device the caller may
/// reach (a device token: its own); INVALID_ARGUMENT or PERMISSION_DENIED
/// otherwise, before any lookup. Names the device in the audit entry.
grpc::Status allow_device(rpc_call& rc, const std::string& name, const char* field);

/// allow_device, then the device's registry record into `out` (NOT_FOUND if
/// it is not registered).
grpc::Status find_device(service_env& env, rpc_call& rc, const std::string& name, const char* field,
                         storage::device_record& out);

/// This node's patients of `tenant` that match `filter`, in `order`
/// (twin_service.cpp; the first query seeds the index from the registry).
std::vector<std::pair<std::string, actors::patient_summary>> local_patients(
    service_env& env, std::string_view tenant, const actors::twin_filter& filter,
    const actors::twin_order& order);

/// PeerService.ListPatientSummaries of this node (twin_service.cpp).
/// PeerService.ApplyPatientParts and LinkDevice on the patient's owner
/// (ingest_forwarding.cpp): the caller is a member (cluster_peers checked
/// its certificate).
grpc::Status apply_patient_parts(service_env& env, const grpc::ServerContext& call,
                                 const internal::PatientParts& req, internal::PatientPartsAck* out);
grpc::Status link_device(service_env& env, const grpc::ServerContext& call,
                         const internal::DeviceLink& req);
/// PeerService.ReleaseDevices on a device's owner (ingest_forwarding.cpp).
grpc::Status release_devices(service_env& env, const grpc::ServerContext& call,
                             const internal::DeviceRelease& req);

grpc::Status local_summaries(service_env& env, const internal::SummaryQuery& q,
                             internal::SummaryList* out);

std::unique_ptr<grpc::Service> make_registry_service(service_env& env);
std::unique_ptr<grpc::Service> make_ingest_service(service_env& env);
std::unique_ptr<grpc::Service> make_twin_service(service_env& env);
std::unique_ptr<grpc::Service> make_alert_service(service_env& env);
std::unique_ptr<grpc::Service> make_cluster_service(service_env& env);
std::unique_ptr<grpc::Service> make_clinical_service(service_env& env);

}  // namespace healthtwin::services
