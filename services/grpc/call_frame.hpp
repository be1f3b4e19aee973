#pragma once
// Private to services/grpc: the frame of every call — admission (ready,
// token, cluster route), rate limits, the audit entry, the request id,
// deadlines — and the state the API's parts share (api_state).

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
#include "services/logging/json_log.hpp"
#include "services/grpc/status_mapping.hpp"
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
  explicit rpc_call(std::string_view name) : rpc(name), row(find_rpc(name)) {}

  std::string_view rpc;                ///< "Service/Method", as in the policy table
  const rpc_row* row;                  ///< its row of the table, found once; null if unknown
  std::optional<principal> who;        ///< set once the token verified
  std::string resource;                ///< what the audit entry names
  bool access_checked = false;

  /// OK when the caller may call this RPC on `scope` (the policy table and
  /// tenant), PERMISSION_DENIED otherwise. Every handler calls it before it
  /// reads or changes anything; `resource` defaults to the tenant.
  grpc::Status allow(const call_scope& scope);
};

/// What the API's parts share: its settings, the node's parts it reaches,
/// and whether the node stops.
class rollout_manager;

struct api_state {
  api_settings settings;
  api_context ctx;
  /// The firmware rollouts this node holds (all on a single node; in a
  /// cluster those named in its shards); null before it starts.
  rollout_manager* rollouts = nullptr;
  std::atomic<bool> stopping{false};
};

/// The frame of every call (service_env is one).
class call_frame {
public:
  explicit call_frame(api_state& state) : state_(state) {}
  call_frame(const call_frame&) = delete;
  call_frame& operator=(const call_frame&) = delete;

  /// Calls in progress (graceful shutdown waits for zero).
  std::atomic<int> active_calls{0};
  std::mutex streams_mtx;
  std::set<drainable*> streams;
  /// Per-principal limits (api_settings); set by api_services.
  std::unique_ptr<rate_limiter> call_rate, reading_rate, device_reading_rate;

  /// OK, or RESOURCE_EXHAUSTED with retry info when `who` is over its rate
  /// of calls (`readings` == 0) or of readings.
  grpc::Status within_rate(const principal& who, size_t readings = 0);

  /// Counts a synchronous call for its whole duration.
  struct call_guard {
    explicit call_guard(call_frame& f) : frame(f) { ++frame.active_calls; }
    ~call_guard() { --frame.active_calls; }
    call_frame& frame;
  };

  bool ready() const { return state_.ctx.ready->load() && !state_.stopping; }

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

  /// The audit entry of a finished call.
  storage::audit_entry audit_entry_for(const grpc::ServerContextBase* call, const rpc_call& rc,
                                       const grpc::Status& outcome) const;

  /// Puts a stream's opening on record before anything is sent (a stream
  /// may last for hours; the frame records how it ended).
  grpc::Status audit_stream_opened(const grpc::ServerContextBase* call, const rpc_call& rc);

  /// Records the call and returns what the caller gets (audit_outcome).
  grpc::Status audited(const grpc::ServerContextBase* call, const rpc_call& rc, grpc::Status outcome);

  /// The frame of every synchronous RPC: counts the call, answers its
  /// request id (x-request-id, the caller's or a new one) in the initial
  /// metadata, refuses it while not ready, authenticates, runs
  /// `body(rpc_call&)` and audits the outcome.
  template <class Body>
  grpc::Status serve(grpc::ServerContextBase* call, std::string_view rpc, Body&& body) {
    call_guard guard{*this};
    auto id = request_id_of(call);
    // Told back to the caller, who can quote it to an operator: every line
    // logged while serving the call carries it.
    call->AddInitialMetadata(std::string{request_id_header}, id);
    request_scope request{std::move(id)};
    rpc_call rc{rpc};
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

  /// How long a call may wait: the node's call_timeout or the client's
  /// deadline, whichever comes first.
  std::chrono::milliseconds timeout(const grpc::ServerContextBase* call) const {
    auto limit = state_.settings.call_timeout;
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

private:
  api_state& state_;
};

}  // namespace healthtwin::services
