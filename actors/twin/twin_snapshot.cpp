#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/twin/twin.hpp"
#include "storage/errc.hpp"
#include "storage/twin_table.hpp"

namespace healthtwin::actors {

namespace {

// Calls send(ok, value) with the snapshot as the twins table stores it.
template <class Send>
void hand_over(const twin_context* ctx, models::twin_kind kind, const std::string& name,
               bool& dirty, const std::function<std::string()>& encode, Send send) {
  storage::twin_table snapshots{*ctx->store, storage::column::twins};
  auto value = snapshots.stored_value(kind, name, encode());
  if (!value) {
    spdlog::error("{} twin: sealing snapshot failed: {}",
                  kind == models::twin_kind::patient ? "patient" : "device",
                  storage::describe(value.error()));
    send(false, std::string{});
    return;
  }
  dirty = false;
  send(true, std::move(*value));
}

// Answers the shard that asked (the current sender): `message(snapshot)`
// with the snapshot hand_over makes, or an empty one when nothing changed.
template <class Message>
void answer(caf::local_actor* self, const twin_context* ctx, models::twin_kind kind,
            const std::string& name, bool& dirty, const std::function<std::string()>& encode,
            Message message) {
  auto shard = caf::actor_cast<caf::actor>(self->current_sender());
  bool patient = kind == models::twin_kind::patient;
  auto send = [&](bool ok, std::string value) {
    message(shard, twin_snapshot{ok, patient, name, std::move(value)});
  };
  if (!dirty)
    send(true, {});
  else
    hand_over(ctx, kind, name, dirty, encode, send);
}

}  // namespace

void answer_snapshot(caf::local_actor* self, const twin_context* ctx,
                     models::twin_kind kind, const std::string& name, bool& dirty,
                     const std::function<std::string()>& encode) {
  answer(self, ctx, kind, name, dirty, encode, [&](const caf::actor& shard, twin_snapshot s) {
    caf::unsafe_send_as(self, shard, snapshot_done_atom::value, std::move(s));
  });
}

void answer_passivation(caf::local_actor* self, const twin_context* ctx,
                        models::twin_kind kind, const snapshot_request& request, bool& dirty,
                        const std::function<std::string()>& encode, int64_t wake_ms) {
  answer(self, ctx, kind, request.name, dirty, encode, [&](const caf::actor& shard, twin_snapshot s) {
    caf::unsafe_send_as(self, shard, passivated_atom::value,
                        passivation{std::move(s), request.token, wake_ms});
  });
}

void save_snapshot(caf::local_actor* self, const caf::actor_addr& shard,
                   const twin_context* ctx, models::twin_kind kind, const std::string& name,
                   bool& dirty, const std::function<std::string()>& encode) {
  auto to = caf::actor_cast<caf::actor>(shard);
  bool patient = kind == models::twin_kind::patient;
  hand_over(ctx, kind, name, dirty, encode, [&](bool ok, std::string value) {
    if (ok && to)
      caf::unsafe_send_as(self, to, snapshot_save_atom::value,
                          twin_snapshot{true, patient, name, std::move(value)});
  });
}

}  // namespace healthtwin::actors
