#include <algorithm>
#include <optional>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/twin/device_twin.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/twin_table.hpp"

namespace healthtwin::actors {

void device_state::load(const std::string& twin_name, const twin_context* ctx) {
  storage::twin_table snapshots{*ctx->store, storage::column::twins};
  auto bytes = snapshots.get(models::twin_kind::device, twin_name);
  if (!bytes) {
    spdlog::error("device twin: reading snapshot failed: {}", storage::describe(bytes.error()));
    return;
  }
  if (!*bytes)
    return;
  internal::DeviceSnapshot s;
  if (!s.ParseFromString(**bytes)) {
    spdlog::error("device twin: snapshot does not parse; starting from the log");
    return;
  }
  applied_position = s.applied_lsn();
  last_sequence = s.window().highest();
  last_reading_ms = s.last_reading_time_ms();
  last_receive_ms = s.last_receive_time_ms();
  has_battery = s.has_battery();
  battery = s.battery_percent();
  battery_time_ms = s.battery_time_ms();
  readings_accepted = s.readings_accepted();
  unassigned_alert = s.unassigned_alert();
}

std::string device_state::encode() const {
  internal::DeviceSnapshot s;
  s.set_applied_lsn(applied_position);
  s.mutable_window()->set_highest(last_sequence);
  s.set_last_reading_time_ms(last_reading_ms);
  s.set_last_receive_time_ms(last_receive_ms);
  s.set_has_battery(has_battery);
  s.set_battery_percent(battery);
  s.set_battery_time_ms(battery_time_ms);
  s.set_readings_accepted(readings_accepted);
  s.set_unassigned_alert(unassigned_alert);
  return s.SerializeAsString();
}

void device_state::apply(const committed_batch& batch, uint32_t entry, const twin_context* ctx) {
  if (batch.position <= applied_position)
    return;
  auto& e = batch.entries[entry];
  if (e.sequence_reset) {
    last_sequence = 0;
    applied_position = batch.position;
    dirty = true;
    return;
  }
  check_assignment(batch, e, ctx);
  for (auto& r : e.readings) {
    // The sequencer admitted each reading exactly once (its window).
    last_sequence = std::max(last_sequence, r.sequence);
    ++readings_accepted;
    last_reading_ms = std::max(last_reading_ms, r.time_ms);
    if (r.metric == models::metric::battery && r.time_ms >= battery_time_ms) {
      battery = r.value;
      battery_time_ms = r.time_ms;
      has_battery = true;
    }
  }
  last_receive_ms = batch.receive_time_ms;
  applied_position = batch.position;
  dirty = true;
}

// A device streaming without a patient: its readings reach no patient
// twin, so someone may be unmonitored (technical alarm, MEDIUM). The
// alert id is the log position: replay raises the same alert (ignored).
void device_state::check_assignment(const committed_batch& batch, const device_entry& e,
                                    const twin_context* ctx) {
  if (e.patient.empty() && !e.readings.empty() && !unassigned_alert) {
    alert_record a;
    a.name = e.device + "/alerts/unassigned-" + std::to_string(batch.position);
    a.device = e.device;
    a.kind = models::alert_kind::device_unassigned;
    a.level = models::priority::medium;
    a.message = "device streams readings but is not assigned to a patient";
    a.raise_time_ms = batch.receive_time_ms;
    a.committed_ms = batch.receive_time_ms;
    caf::anon_send(ctx->alert_hub, alert_raise_atom::value, std::move(a));
    unassigned_alert = true;
  } else if (!e.patient.empty() && unassigned_alert) {
    caf::anon_send(ctx->alert_hub, alert_resolve_kind_atom::value,
                   alert_kind_resolution{e.device, models::alert_kind::device_unassigned,
                                         batch.receive_time_ms});
    unassigned_alert = false;
  }
}

device_view device_state::view() const {
  return device_view{applied_position, last_sequence, last_reading_ms, last_receive_ms,
                     has_battery,      battery,          readings_accepted};
}

namespace {

using models::twin_kind;

struct device_twin_state {
  static constexpr const char* name = "device_twin";
  device_state twin;
};

// CAF's actor_storage<stateful_actor<device_twin_state>> is 1,088 + 64
// bytes: one more field would move every device twin into tcmalloc's next
// size class.
static_assert(sizeof(device_twin_state) <= 64, "device_state must stay within 64 bytes");
// Typing the twin's protocol costs no byte per twin.
static_assert(sizeof(device_twin_actor::stateful_base<device_twin_state>) <=
                  sizeof(caf::stateful_actor<device_twin_state>),
              "a typed device twin must be no larger than an untyped one");

device_twin_actor::behavior_type device_twin(
    device_twin_actor::stateful_pointer<device_twin_state> self, const std::string& name,
    const twin_context* ctx, const std::optional<device_state>& replayed) {
  if (replayed)
    self->state.twin = *replayed;
  else
    self->state.twin.load(name, ctx);
  return {
      [=](apply_atom, const twin_work& w) {
        for (auto idx : w.entries)
          self->state.twin.apply(*w.batch, idx, w.ctx);
        w.ctx->flow->pending.fetch_sub(1, std::memory_order_relaxed);
      },
      [=](snapshot_atom, const snapshot_request& r) {
        auto& st = self->state.twin;
        answer_snapshot(self, r.ctx, twin_kind::device, r.name, st.dirty,
                        [&] { return st.encode(); });
      },
      [=](passivate_atom, const snapshot_request& r) {
        auto& st = self->state.twin;
        answer_passivation(self, r.ctx, twin_kind::device, r, st.dirty,
                           [&] { return st.encode(); }, 0);
      },
      [=](view_atom) { return self->state.twin.view(); },
  };
}

}  // namespace

device_twin_actor spawn_device_twin(caf::actor_system& sys, std::string name,
                                    const twin_context* ctx, std::optional<device_state> replayed) {
  return sys.spawn<caf::lazy_init>(device_twin, std::move(name), ctx, std::move(replayed));
}

}  // namespace healthtwin::actors
