#include <algorithm>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/twin/twin.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/twin_table.hpp"

namespace healthtwin::actors {

namespace {

using models::twin_kind;

// A million of these live in a node: the state stays within 64 bytes so
// that CAF's actor allocation fits tcmalloc's 1,152-byte size class (see
// docs/benchmarks.md). The twin keeps neither its name nor the node's twin
// context: the shard passes both with every message that needs them.
struct device_state {
  static constexpr const char* name = "device_twin";

  uint64_t applied_position = 0;
  uint64_t last_sequence = 0;  // the window itself is the sequencer's
  int64_t last_reading_ms = 0;
  int64_t last_receive_ms = 0;
  int64_t battery_time_ms = 0;
  double battery = 0;
  uint64_t readings_accepted = 0;
  bool has_battery = false;
  bool dirty = false;
  bool unassigned_alert = false;  // a device-unassigned alert is open

  void load(const std::string& twin_name, const twin_context* ctx) {
    storage::twin_table snapshots{*ctx->store, storage::column::twins};
    auto bytes = snapshots.get(twin_kind::device, twin_name);
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

  std::string encode() const {
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

  // Applying is idempotent: a batch at or below applied_position was
  // already reflected (replay after a crash).
  void apply(caf::event_based_actor* self, const twin_work& work) {
    auto& batch = *work.batch;
    if (batch.position > applied_position) {
      for (auto idx : work.entries) {
        check_assignment(self, batch, batch.entries[idx], work.ctx);
        for (auto& r : batch.entries[idx].readings) {
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
      }
      last_receive_ms = batch.receive_time_ms;
      applied_position = batch.position;
      dirty = true;
    }
    work.ctx->flow->pending.fetch_sub(1, std::memory_order_relaxed);
  }

  // A device streaming without a patient: its readings reach no patient
  // twin, so someone may be unmonitored (technical alarm, MEDIUM). The
  // alert id is the log position: replay raises the same alert (ignored).
  void check_assignment(caf::event_based_actor* self, const committed_batch& batch,
                        const device_entry& e, const twin_context* ctx) {
    if (e.patient.empty() && !e.readings.empty() && !unassigned_alert) {
      alert_record a;
      a.name = e.device + "/alerts/unassigned-" + std::to_string(batch.position);
      a.device = e.device;
      a.kind = models::alert_kind::device_unassigned;
      a.level = models::priority::medium;
      a.message = "device streams readings but is not assigned to a patient";
      a.raise_time_ms = batch.receive_time_ms;
      self->send(ctx->alert_hub, alert_raise_atom::value, std::move(a));
      unassigned_alert = true;
    } else if (!e.patient.empty() && unassigned_alert) {
      self->send(ctx->alert_hub, alert_resolve_kind_atom::value, e.device,
                 models::alert_kind::device_unassigned, batch.receive_time_ms);
      unassigned_alert = false;
    }
  }

  device_view view() const {
    return device_view{applied_position, last_sequence, last_reading_ms, last_receive_ms,
                       has_battery,      battery,          readings_accepted};
  }
};

// CAF's actor_storage<stateful_actor<device_state>> is 1,088 + 64 bytes: one
// more field would move every device twin into tcmalloc's next size class.
static_assert(sizeof(device_state) <= 64, "device_state must stay within 64 bytes");

caf::behavior device_twin(caf::stateful_actor<device_state>* self, const std::string& name,
                          const twin_context* ctx) {
  self->state.load(name, ctx);
  return {
      [=](apply_atom, const twin_work& w) { self->state.apply(self, w); },
      [=](snapshot_atom, const std::string& twin_name, twin_context_ref c) {
        auto& st = self->state;
        answer_snapshot(self, c.ctx, twin_kind::device, twin_name, st.dirty,
                        [&] { return st.encode(); });
      },
      [=](view_atom) { return self->state.view(); },
  };
}

}  // namespace

caf::actor spawn_device_twin(caf::actor_system& sys, std::string name, const twin_context* ctx) {
  return sys.spawn<caf::lazy_init>(device_twin, std::move(name), ctx);
}

}  // namespace healthtwin::actors
