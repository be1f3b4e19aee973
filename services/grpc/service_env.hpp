#pragma once
// Private to services/grpc: what every service implementation shares.

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>

#include <caf/all.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/service_type.h>

#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/twin_name.hpp"
#include "services/grpc/api_services.hpp"

namespace healthtwin::services {

/// A long-lived call that must end when the node stops (ingest streams).
struct drainable {
  virtual ~drainable() = default;
  /// Stop taking input; finish once what was accepted is acknowledged.
  /// Called with streams_mtx held: returns the gRPC calls to make after it
  /// is released (the stream stays alive until they ran).
  virtual std::function<void()> drain() = 0;
};

struct service_env {
  api_settings settings;
  api_context ctx;
  std::atomic<bool> stopping{false};
  /// Calls in progress (graceful shutdown waits for zero).
  std::atomic<int> active_calls{0};
  std::mutex streams_mtx;
  std::set<drainable*> streams;

  /// Counts a synchronous call for its whole duration.
  struct call_guard {
    explicit call_guard(service_env& e) : env(e) { ++env.active_calls; }
    ~call_guard() { --env.active_calls; }
    service_env& env;
  };

  bool ready() const { return ctx.ready->load() && !stopping; }

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  const caf::actor& shard_for(std::string_view name) const {
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
  template <class T, class... Ts>
  caf::expected<T> ask(const caf::actor& dest, std::chrono::milliseconds timeout, Ts&&... xs) {
    caf::scoped_actor self{*ctx.sys};
    caf::expected<T> out{caf::make_error(caf::sec::request_timeout)};
    self->request(dest, timeout, std::forward<Ts>(xs)...)
        .receive([&](T& v) { out = std::move(v); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }
};

/// True for free text shown to clinicians: 1..max bytes (0..max when
/// optional) without control characters.
bool valid_label(std::string_view s, size_t max, bool optional = false);

/// OK when `name` (request field `field`) names a registered patient;
/// INVALID_ARGUMENT or NOT_FOUND otherwise. Checked before a call reaches a
/// twin, so that no request activates a twin for a patient that does not exist.
grpc::Status check_patient(service_env& env, const std::string& name, const char* field);

std::unique_ptr<grpc::Service> make_registry_service(service_env& env);
std::unique_ptr<grpc::Service> make_ingest_service(service_env& env);
std::unique_ptr<grpc::Service> make_twin_service(service_env& env);
std::unique_ptr<grpc::Service> make_alert_service(service_env& env);
std::unique_ptr<grpc::Service> make_cluster_service(service_env& env);
std::unique_ptr<grpc::Service> make_clinical_service(service_env& env);

}  // namespace healthtwin::services
