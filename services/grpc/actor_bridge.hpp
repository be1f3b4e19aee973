#pragma once
// Private to services/grpc: the API's way into the actors — the shard of a
// twin, a registry command or clinician input made durable through the
// ingest sequencer, and a request to an actor from a gRPC thread.

#include <chrono>
#include <future>
#include <memory>
#include <string_view>

#include <caf/all.hpp>

#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/shard/shard.hpp"
#include "services/grpc/call_frame.hpp"

namespace healthtwin::services {

/// The actor bridge (service_env is one).
class actor_bridge {
public:
  actor_bridge(api_state& state, const call_frame& frame) : state_(state), frame_(frame) {}
  actor_bridge(const actor_bridge&) = delete;
  actor_bridge& operator=(const actor_bridge&) = delete;

  /// The shard actor that owns `name`'s twin.
  const actors::shard_actor& shard_for(std::string_view name) const {
    auto& shards = *state_.ctx.shards;
    return shards[models::shard_of(name, static_cast<uint32_t>(shards.size()))];
  }

  /// Submits a registry command or clinician input to the sequencer and
  /// waits (within the call's timeout) until it is durable.
  template <class Command>
  actors::registry_result sequence(const grpc::ServerContextBase* call, Command&& cmd) {
    return sequence_within(frame_.timeout(call), std::forward<Command>(cmd));
  }

  /// The same with no call behind it (the node's own work: rollouts), waiting
  /// at most `timeout`.
  template <class Command>
  actors::registry_result sequence_within(std::chrono::milliseconds timeout, Command&& cmd) {
    auto promise = std::make_shared<std::promise<actors::registry_result>>();
    auto future = promise->get_future();
    state_.ctx.sequencer->submit(std::forward<Command>(cmd), [promise](actors::registry_result&& r) {
      promise->set_value(std::move(r));
    });
    if (future.wait_for(timeout) != std::future_status::ready) {
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
    caf::scoped_actor self{*state_.ctx.sys};
    caf::expected<T> out{caf::make_error(caf::sec::request_timeout)};
    self->request(dest, timeout, std::forward<Ts>(xs)...)
        .receive([&](T& v) { out = std::move(v); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }
private:
  api_state& state_;
  const call_frame& frame_;
};

}  // namespace healthtwin::services
