#pragma once
// Private to services/grpc: where a call about one twin is answered — here,
// or at the member that owns its shard (through the peer layer's
// owner_forwarding) — and the calls made to other members on a caller's
// behalf: unary, relayed streams, split ingest, device links and releases.

#include <future>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "services/grpc/call_frame.hpp"
#include "services/grpc/region_links.hpp"
#include "services/grpc/status_mapping.hpp"
#include "services/grpc/stream_watch.hpp"
#include "services/peer/cluster_metrics.hpp"
#include "services/peer/owner_forwarding.hpp"
#include "services/peer/shard_handoff.hpp"

namespace healthtwin::services {

/// Owner routing (service_env is one).
class owner_routing {
public:
  owner_routing(api_state& state, const call_frame& frame) : state_(state), frame_(frame) {}
  owner_routing(const owner_routing&) = delete;
  owner_routing& operator=(const owner_routing&) = delete;

  /// Shard hand-offs; set in a cluster (ctx.forwarding).
  std::unique_ptr<shard_handoff> handoff;
  /// Streams relayed from their owner, ended when their caller goes away.
  stream_watch relays;

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
    if (state_.ctx.cluster_probe)
      state_.ctx.cluster_probe->on_forwarded("unary", st.error_code());
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
    if (auto fwd = forward(call, name, remote))
      return *fwd;
    auto st = local();
    if (st.error_code() == grpc::StatusCode::NOT_FOUND)
      if (auto home = at_home(call, name, remote))
        return *home;
    return st;
  }

  /// Other regions (docs/multi-region.md); null for a node without one.
  std::unique_ptr<region_links> regions;

  /// For a patient or device `name` not registered here (its call answered
  /// NOT_FOUND): the answer of its home region to `remote(stubs, context)`
  /// (forwarding, with the caller's token and deadline) or
  /// FAILED_PRECONDITION naming that region (redirecting); UNAVAILABLE when
  /// a region that might have it could not be asked. nullopt when no other
  /// region has it, regions are off, or the call came from another region.
  template <class Remote>
  std::optional<grpc::Status> at_home(const grpc::ServerContextBase* call, std::string_view name,
                                      Remote&& remote) {
    auto home = home_elsewhere(call, name);
    if (!home || !home->status.ok())
      return home ? std::optional{home->status} : std::nullopt;
    return to_home(call, name, home->region, std::forward<Remote>(remote));
  }

  /// The answer of `region` to `remote(stubs, context)` made there on the
  /// caller's behalf (forwarding regions), or FAILED_PRECONDITION naming it
  /// (redirecting ones). `name`: the patient or device the call is about.
  template <class Remote>
  grpc::Status to_home(const grpc::ServerContextBase* call, std::string_view name,
                       const std::string& region, Remote&& remote) {
    if (!regions->settings().forward)
      return homed_elsewhere("this " + twin_kind_of(name), region, regions->endpoint(region));
    std::string why;
    auto stubs = regions->stubs(region, why);
    if (!stubs)
      return region_unreachable(region, why);
    grpc::ClientContext out;
    prepare_region_forwarded(call, out);
    auto st = remote(*stubs, out);
    if (state_.ctx.cluster_probe)
      state_.ctx.cluster_probe->on_forwarded("region", st.error_code());
    if (st.error_code() == grpc::StatusCode::NOT_FOUND)
      regions->forget(name);  // erased there, or moved: asked again next time
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
        st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      return region_unreachable(region, st.error_message());
    return st;
  }

  /// For a stream about the patient or device `name` (a watch, a patient's
  /// alerts) on the node that would serve it: FAILED_PRECONDITION naming
  /// its home region when it is not registered here and another region has
  /// it — streams are not carried across regions, the caller opens it
  /// there — or UNAVAILABLE when a region that might have it cannot be
  /// asked. nullopt: serve it here.
  std::optional<grpc::Status> stream_elsewhere(const grpc::ServerContextBase* call, std::string_view name) {
    auto home = home_elsewhere(call, name);
    if (!home || !home->status.ok())
      return home ? std::optional{home->status} : std::nullopt;
    return homed_elsewhere("this " + twin_kind_of(name), home->region, regions->endpoint(home->region));
  }

  /// Where the patient or device `name` is homed when that is not here:
  /// nullopt when this node is to answer (no regions, a call from another
  /// region, not a twin's name, registered here, or no region has it);
  /// else the home found (status OK) or why it could not be found.
  std::optional<twin_home> home_elsewhere(const grpc::ServerContextBase* call, std::string_view name) {
    if (!regions || call->client_metadata().count(region_forwarded_header))
      return std::nullopt;
    if (twin_kind_of(name).empty() || registered_here(name))
      return std::nullopt;  // rollouts live in every region; a sub-resource missing here
    auto home = find_home(call, std::string{name});
    if (home.status.error_code() == grpc::StatusCode::NOT_FOUND)
      return std::nullopt;
    return home;
  }

  /// Where the patient or device `name`, not registered here, is homed:
  /// remembered from an earlier answer when this node forwards, else asked
  /// of every other region with the caller's token (LocateTwin).
  twin_home find_home(const grpc::ServerContextBase* call, const std::string& name) {
    if (regions->settings().forward)
      if (auto r = regions->remembered(name); !r.empty())
        return {grpc::Status::OK, r};
    return regions->locate(name, [&](grpc::ClientContext& out) { prepare_region_forwarded(call, out); });
  }

  /// A call made to another region on the caller's behalf: its token,
  /// deadline and request id, marked as forwarded from this region.
  void prepare_region_forwarded(const grpc::ServerContextBase* call, grpc::ClientContext& out) const;

  /// UNAVAILABLE with retry info: `region` could not be reached.
  static grpc::Status region_unreachable(const std::string& region, const std::string& why);

  /// True when the patient or device `name` is registered on this node
  /// (its owner); false when it is not, or cannot be read.
  bool registered_here(std::string_view name) const;

  /// "patient" or "device" for a twin name, empty for anything else.
  static std::string twin_kind_of(std::string_view name);

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
    auto watched =
        relays.watch([call, this] { return call->IsCancelled() || state_.stopping.load(); },
                      [&out] { out.TryCancel(); });
    auto reader = open(*r->stubs, out);
    Message m;
    while (reader->Read(&m))
      if (!writer->Write(m)) {
        out.TryCancel();
        break;
      }
    auto st = reader->Finish();
    if (state_.ctx.cluster_probe)
      state_.ctx.cluster_probe->on_forwarded("stream", st.error_code());
    if (st.error_code() == grpc::StatusCode::CANCELLED && !call->IsCancelled() && !state_.stopping)
      return owner_unreachable(r->where, st.error_message());  // the owner went away
    return owner_answer(std::move(st), r->where);
  }

  /// Calls every other member at once (forwarded calls, with the caller's
  /// token, within its deadline): `start(stubs, context, response, done)`
  /// starts the async call on one member and calls `done(status)` when it
  /// ends; then `each(member_name, status, response)` for each member in
  /// turn, once all have answered or failed (UNAVAILABLE when not reached).
  /// Only in a cluster (ctx.forwarding).
  template <class Response, class Start, class Each>
  void ask_every_member(const grpc::ServerContextBase* call, Start&& start, Each&& each) {
    struct answer {
      uint32_t member = 0;
      grpc::ClientContext context;
      Response response;
      std::promise<grpc::Status> done;
    };
    auto& fwd = *state_.ctx.forwarding;
    std::vector<std::unique_ptr<answer>> answers;
    for (auto m : fwd.others()) {
      auto& a = *answers.emplace_back(std::make_unique<answer>());
      a.member = m;
      auto stubs = fwd.stubs(m);
      if (!stubs) {
        a.done.set_value(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not reached yet"));
        continue;
      }
      prepare_forwarded(call, a.context);
      start(*stubs, a.context, a.response, [&a](grpc::Status st) { a.done.set_value(std::move(st)); });
    }
    for (auto& a : answers) {
      auto st = a->done.get_future().get();  // each call ends by its deadline
      each(fwd.member_name(a->member), st, a->response);
    }
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
    if (!state_.ctx.forwarding)
      return std::nullopt;
    auto owner = state_.ctx.forwarding->remote_owner(name);
    if (!owner)
      return std::nullopt;
    owner_route r;
    r.where = "shard " + std::to_string(state_.ctx.forwarding->shard(name)) + " (member " +
              state_.ctx.forwarding->member_name(*owner) + ")";
    if (call->client_metadata().count(forwarded_by_header))
      r.refusal = owner_unreachable(r.where, "forwarded to a member that does not own it (a "
                                             "hand-off in progress, or the members' states differ)");
    else if (!(r.stubs = state_.ctx.forwarding->stubs(*owner)))
      r.refusal = owner_unreachable(r.where, "not reached yet");
    return r;
  }

  /// True in a cluster when another member owns `name`'s shard.
  bool owned_elsewhere(std::string_view name) const {
    return state_.ctx.forwarding && state_.ctx.forwarding->remote_owner(name).has_value();
  }

  /// A call made on the caller's behalf to another member: the caller's
  /// token and deadline (forward_timeout(); for a stream, the caller's own deadline
  /// if it set one), marked as forwarded by this node.
  void prepare_forwarded(const grpc::ServerContextBase* call, grpc::ClientContext& out,
                         bool stream = false) const {
    if (!stream)
      out.set_deadline(std::chrono::system_clock::now() + frame_.forward_timeout(call));
    else if (call->deadline() != std::chrono::system_clock::time_point::max())
      out.set_deadline(call->deadline());
    on_callers_behalf(call, out, forwarded_by_header, state_.ctx.members->self_member().name);
  }

  /// The caller's token and request id on `out` (the callee's log lines
  /// carry it too), and `marker`: who sends the call on.
  static void on_callers_behalf(const grpc::ServerContextBase* call, grpc::ClientContext& out,
                                const char* marker, const std::string& by) {
    auto& md = call->client_metadata();
    if (auto token = md.find("authorization"); token != md.end())
      out.AddMetadata("authorization", std::string{token->second.data(), token->second.size()});
    out.AddMetadata(marker, by);
    if (auto id = current_request_id(); !id.empty())
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
    auto stub = state_.ctx.forwarding->peer(m);
    if (!stub)
      return owner_unreachable(where, "no channel");
    grpc::ClientContext out;
    out.set_deadline(deadline);
    return owner_answer(invoke(*stub, out), where, hint);
  }

private:
  api_state& state_;
  const call_frame& frame_;
};

}  // namespace healthtwin::services
