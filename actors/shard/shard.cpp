#include "actors/shard/shard.hpp"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include <caf/all.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include "actors/alerts/alert_hub.hpp"
#include "actors/shard/passivation.hpp"
#include "actors/twin/device_twin.hpp"
#include "storage/errc.hpp"
#include "storage/registry.hpp"
#include "storage/store.hpp"
#include "storage/twin_table.hpp"

namespace healthtwin::actors {

namespace {

/// Prometheus instruments shared by all shards of a node.
class shard_probe {
public:
  explicit shard_probe(prometheus::Registry& reg)
      : twins_(prometheus::BuildGauge()
                   .Name("healthtwin_shard_twins_active")
                   .Help("Twin actors in memory, by kind")
                   .Register(reg)),
        devices_(twins_.Add({{"kind", "device"}})),
        patients_(twins_.Add({{"kind", "patient"}})),
        passivated_(prometheus::BuildCounter()
                        .Name("healthtwin_twins_passivated_total")
                        .Help("Idle twins whose snapshot was written and actor stopped, by kind")
                        .Register(reg)),
        devices_passivated_(passivated_.Add({{"kind", "device"}})),
        patients_passivated_(passivated_.Add({{"kind", "patient"}})) {}

  void on_activated(bool device) { (device ? devices_ : patients_).Increment(); }
  void on_passivated(bool device) {
    (device ? devices_ : patients_).Decrement();
    (device ? devices_passivated_ : patients_passivated_).Increment();
  }
  void on_stopped(uint64_t devices, uint64_t patients) {
    devices_.Decrement(static_cast<double>(devices));
    patients_.Decrement(static_cast<double>(patients));
  }

private:
  prometheus::Family<prometheus::Gauge>& twins_;
  prometheus::Gauge& devices_;
  prometheus::Gauge& patients_;
  prometheus::Family<prometheus::Counter>& passivated_;
  prometheus::Counter& devices_passivated_;
  prometheus::Counter& patients_passivated_;
};

template <class Handle>
struct twin_slot {
  Handle actor;  // none for an erased patient
  uint32_t used = 0;       // passivation_clock stamp of its last use
  uint16_t token = 0;      // of its last (passivate) request
  bool passivating = false;  // asked to passivate, and unused since
  bool dirty = false;
  bool erased = false;
};
using device_slot = twin_slot<device_twin_actor>;
using patient_slot = twin_slot<patient_twin_actor>;

struct shard_state {
  static constexpr const char* name = "shard";

  uint32_t index = 0;
  const twin_context* ctx = nullptr;
  std::shared_ptr<shard_probe> probe;
  caf::actor_addr self_addr;  // given to patient twins for their snapshots
  std::unordered_map<std::string, device_slot> devices;
  std::unordered_map<std::string, patient_slot> patients;
  // Devices a log replay applied to without activating them (no twin in
  // `devices`): written at the next checkpoint, or handed to the twin.
  std::unordered_map<std::string, device_state> replayed;
  // Idle twins (docs/adr/0035): when each was last used, and when a
  // passivated patient must be woken for its devices' offline check.
  passivation_clock idle{0};
  wake_table wakes;
  // Node time from which this shard's twins are live here: no device is
  // reported offline before the offline time has passed since.
  int64_t live_since_ms = 0;

  // The checkpoint round in progress (at most one per node at a time).
  checkpoint_round_ptr round;
  size_t round_waiting = 0;
  bool round_ok = true;
  bool snapshot_all_next = false;  // a snapshot failed: ask every twin next time
  bool forget_after_round = false;  // a hand-off's forget waits for the round in progress
  // Snapshots handed over by the twins, written when the round ends or the
  // batch reaches snapshot_batch_bytes (see answer_snapshot).
  std::unique_ptr<storage::write_batch> snapshots;
  size_t snapshot_bytes = 0;
  static constexpr size_t snapshot_batch_bytes = 4 << 20;
  // Scratch of route: a batch's patient entries by twin.
  std::vector<std::pair<patient_slot*, uint32_t>> by_slot;

  // Every use of a twin goes through device() or patient(): it is not idle.
  template <class Slot>
  Slot& used(Slot& slot) {
    slot.used = idle.now();
    slot.passivating = false;
    return slot;
  }

  device_slot& device(caf::actor_system& sys, const std::string& name) {
    auto [i, fresh] = devices.try_emplace(name);
    if (fresh) {
      auto r = replayed.find(name);
      if (r == replayed.end()) {
        i->second.actor = spawn_device_twin(sys, name, ctx);
      } else {
        i->second.actor = spawn_device_twin(sys, name, ctx, r->second);
        i->second.dirty = r->second.dirty;
        replayed.erase(r);
      }
      probe->on_activated(true);
      ctx->counters->devices.fetch_add(1, std::memory_order_relaxed);
    }
    return used(i->second);
  }

  // An erased patient never gets a twin again (a log replay may still
  // carry its readings): its slot stays empty and drops its work.
  patient_slot& patient(caf::actor_system& sys, const std::string& name) {
    auto [i, fresh] = patients.try_emplace(name);
    if (fresh && ctx->store->patient_erased(name)) {
      i->second.erased = true;
    } else if (fresh) {
      i->second.actor = spawn_patient_twin(sys, name, ctx, self_addr, live_since_ms);
      probe->on_activated(false);
      ctx->counters->patients.fetch_add(1, std::memory_order_relaxed);
    }
    return used(i->second);
  }

  // Tells `name`'s watchers (after its twin was sent the change).
  void touched(std::string_view name) const {
    if (ctx->changes)
      ctx->changes->touched(name);
  }

  // Routes the work to the twins; the number of messages sent to them.
  int64_t route(auto* self, const shard_work& w, bool replay) {
    auto& sys = self->system();
    int64_t sent = 0;
    for (auto idx : w.device_entries) {
      auto& name = w.batch->entries[idx].device;
      if (replay && devices.find(name) == devices.end()) {
        auto [r, fresh] = replayed.try_emplace(name);
        if (fresh)
          r->second.load(name, ctx);
        r->second.apply(*w.batch, idx, ctx);
        continue;
      }
      auto& slot = device(sys, name);
      slot.dirty = true;
      self->send(slot.actor, apply_atom::value, twin_work{w.batch, {idx}, ctx});
      touched(name);  // a watcher's view asked through this shard comes after the work
      ++sent;
    }
    // A patient with several devices in the batch gets one message with all
    // of them, so it applies the batch as a whole (idempotence by position):
    // entries grouped by their twin's slot (integers compared, not names),
    // each group in batch order.
    auto& entries = w.batch->entries;
    by_slot.clear();
    for (auto idx : w.patient_entries)
      by_slot.emplace_back(&patient(sys, entries[idx].patient), idx);
    std::sort(by_slot.begin(), by_slot.end(), [](const auto& a, const auto& b) {
      return std::less<>{}(a.first, b.first) || (a.first == b.first && a.second < b.second);
    });
    for (size_t i = 0; i < by_slot.size();) {
      auto* slot = by_slot[i].first;
      twin_work work{w.batch, {}, ctx};
      for (; i < by_slot.size() && by_slot[i].first == slot; ++i)
        work.entries.push_back(by_slot[i].second);
      if (slot->erased)
        continue;
      slot->dirty = true;
      auto& name = entries[work.entries.front()].patient;
      self->send(slot->actor, apply_atom::value, std::move(work));
      touched(name);
      ++sent;
    }
    return sent;
  }

  // Each message was one unit of pending work; the twins now hold `sent`.
  void apply(auto* self, const shard_work& w) {
    ctx->flow->pending.fetch_add(route(self, w, false) - 1, std::memory_order_relaxed);
  }

  void apply(auto* self, const replay_work& r) {
    int64_t sent = 0;
    for (auto& w : r.works)
      sent += route(self, w, true);
    ctx->flow->pending.fetch_add(sent - 1, std::memory_order_relaxed);
  }

  // Adds a twin's snapshot to the batch; an erased patient's is dropped
  // (its twin may have answered after the erasure passed through here).
  void add_snapshot(bool is_patient, const std::string& name, const std::string& value) {
    if (is_patient) {
      auto i = patients.find(name);
      if (i == patients.end() || i->second.erased)
        return;
    }
    if (!snapshots)
      snapshots = std::make_unique<storage::write_batch>(*ctx->store);
    auto kind = is_patient ? models::twin_kind::patient : models::twin_kind::device;
    snapshots->put(storage::column::twins,
                   storage::twin_table{*ctx->store, storage::column::twins}.key(kind, name), value);
    snapshot_bytes += value.size();
  }

  // Adds the snapshots of replayed devices to the round's batch; they are
  // forgotten once the round wrote them (finish_round).
  void snapshot_replayed(bool all) {
    storage::twin_table table{*ctx->store, storage::column::twins};
    for (auto& [name, st] : replayed) {
      if (!st.dirty && !all)
        continue;
      auto value = table.stored_value(models::twin_kind::device, name, st.encode());
      if (!value) {
        spdlog::error("shard: sealing a replayed device snapshot failed: {}",
                      storage::describe(value.error()));
        round_ok = false;
        snapshot_all_next = true;
        return;
      }
      st.dirty = false;
      add_snapshot(false, name, *value);
      if (snapshot_bytes >= snapshot_batch_bytes)
        write_snapshots();
    }
  }

  // Writes the batched snapshots (not fsynced: the checkpoint record that
  // follows is, and the log rebuilds them).
  bool write_snapshots() {
    if (!snapshots || snapshots->count() == 0)
      return true;
    bool ok = true;
    if (auto err = ctx->store->write(*snapshots, false)) {
      spdlog::error("shard: writing {} twin snapshots failed: {}", snapshots->count(),
                    storage::describe(err));
      round_ok = false;
      snapshot_all_next = true;
      ok = false;
    }
    // Released, not cleared: a cleared batch keeps its capacity (up to
    // snapshot_batch_bytes per shard, ~1 KB per twin it ever wrote).
    snapshots.reset();
    snapshot_bytes = 0;
    return ok;
  }

  void finish_round(auto* self) {
    write_snapshots();
    if (round_ok)
      replayed.clear();  // all written: they load from their snapshots now
    auto r = std::move(round);
    round = nullptr;
    if (!round_ok)
      r->failed = true;
    if (r->shards_left.fetch_sub(1) == 1)
      r->on_done(!r->failed.load());
    if (forget_after_round)
      forget(self);
  }

  // Stops every twin, without a snapshot: the shard's stored state moved
  // (or came) with a hand-off, which checkpointed it first. Snapshots that
  // twins send afterwards are dropped (known() below).
  void forget(auto* self) {
    if (round) {  // its twins still answer it: after it
      forget_after_round = true;
      return;
    }
    forget_after_round = false;
    stop_twins(self);
    replayed.clear();
    wakes.clear();
    live_since_ms = ctx->now_ms();
    snapshot_all_next = false;
    snapshots.reset();
    snapshot_bytes = 0;
  }

  // Stops the twin of `name` (never given work: it was not registered) so
  // that its next use loads what was just stored.
  void forget_patient(auto* self, const std::string& name) {
    auto i = patients.find(name);
    if (i == patients.end() || i->second.dirty)
      return;
    if (i->second.actor) {
      self->send_exit(i->second.actor, caf::exit_reason::user_shutdown);
      probe->on_stopped(0, 1);
      ctx->counters->patients.fetch_sub(1, std::memory_order_relaxed);
    }
    patients.erase(i);
  }

  bool known(bool is_patient, const std::string& name) const {
    return is_patient ? patients.count(name) > 0 : devices.count(name) > 0;
  }

  void stop_twins(auto* self) {
    size_t erased = 0;
    auto stop = [&](auto& table) {
      for (auto& [_, slot] : table) {
        if (slot.actor)
          self->send_exit(slot.actor, caf::exit_reason::user_shutdown);
        else
          ++erased;
      }
    };
    stop(devices);
    stop(patients);
    probe->on_stopped(devices.size(), patients.size() - erased);
    ctx->counters->devices.fetch_sub(devices.size(), std::memory_order_relaxed);
    ctx->counters->patients.fetch_sub(patients.size() - erased, std::memory_order_relaxed);
    devices.clear();
    patients.clear();
  }

  void checkpoint(auto* self, checkpoint_round_ptr r) {
    round = std::move(r);
    round_ok = true;
    round_waiting = 0;
    bool all = snapshot_all_next;
    snapshot_all_next = false;
    snapshot_replayed(all);
    auto ask = [&](auto& table) {
      for (auto& [name, slot] : table)
        if ((slot.dirty || all) && !slot.erased) {
          slot.passivating = false;  // stays for the round; the next sweep asks again
          slot.dirty = false;
          self->send(slot.actor, snapshot_atom::value, snapshot_request{name, ctx});
          ++round_waiting;
        }
    };
    ask(devices);
    ask(patients);
    if (round_waiting == 0)
      finish_round(self);
  }

  void snapshot_done(auto* self, const twin_snapshot& s) {
    auto& [ok, is_patient, name, value] = s;
    if (!ok) {
      round_ok = false;
      snapshot_all_next = true;
    } else if (!value.empty() && known(is_patient, name)) {
      add_snapshot(is_patient, name, value);
      if (!round || snapshot_bytes >= snapshot_batch_bytes)
        write_snapshots();
    }
    if (round && --round_waiting == 0)
      finish_round(self);
  }

  // State that is not in the log: written now, or with the round's batch
  // (after any earlier snapshot of the same twin) while a round runs.
  void snapshot_save(bool is_patient, const std::string& name, const std::string& value) {
    if (!known(is_patient, name))
      return;  // a twin stopped by a hand-off (forget)
    add_snapshot(is_patient, name, value);
    if (!round)
      write_snapshots();
  }

  // The erased patient's twin (if active) passes the erasure on to the
  // alert hub after what it was already sent; the hub deletes the records.
  void erase(auto* self, const std::string& name, erase_completion_ptr done) {
    write_snapshots();  // before the hub deletes the patient's records
    auto& slot = patients[name];
    if (slot.actor) {
      self->send(slot.actor, erase_atom::value, std::move(done));
      probe->on_stopped(0, 1);
      ctx->counters->patients.fetch_sub(1, std::memory_order_relaxed);
    } else if (!slot.erased) {
      self->send(ctx->alert_hub, alert_erase_atom::value, alert_erasure{name, std::move(done)});
    }
    slot = patient_slot{};
    slot.erased = true;
  }

  // Device health of every patient twin held (see health_tick_atom), and
  // of the passivated ones whose devices are due: their twins are woken.
  // A twin asked to passivate is not ticked: a finding of its tick would
  // come after its passivation; its wake-up time covers the tick instead.
  void health_tick(auto* self) {
    for (auto& [_, slot] : patients)
      if (slot.actor && !slot.passivating)
        self->send(slot.actor, health_tick_atom::value);
    wakes.take_due(ctx->now_ms(), [&](const std::string& name) {
      if (patients.count(name) > 0)
        return;  // live again: ticked above
      auto& slot = patient(self->system(), name);
      if (slot.actor)
        self->send(slot.actor, health_tick_atom::value);
    });
    self->delayed_send(self, std::chrono::milliseconds{ctx->settings.device_tick_ms},
                       health_tick_atom::value);
  }

  // Asks the twins unused for the idle time to passivate (docs/adr/0035).
  void sweep(auto* self) {
    idle.sweep();
    auto ask = [&](auto& table) {
      for (auto& [name, slot] : table)
        if (slot.actor && !slot.passivating && idle.idle(slot.used)) {
          slot.passivating = true;
          ++slot.token;
          self->send(slot.actor, passivate_atom::value, snapshot_request{name, ctx, slot.token});
        }
    };
    ask(devices);
    ask(patients);
    self->delayed_send(self, idle.sweep_interval(), passivate_sweep_atom::value);
  }

  // A twin handed over its snapshot. Written now (a twin activated again
  // reads it); the twin is stopped unless it was used since it was asked,
  // or the write failed.
  template <class Table>
  void passivated(auto* self, Table& table, const passivation& p) {
    auto i = table.find(p.snapshot.name);
    if (i == table.end() || i->second.erased)
      return;  // forgotten (a hand-off) or erased since
    auto& slot = i->second;
    bool written = p.snapshot.ok;
    if (written && !p.snapshot.value.empty()) {
      add_snapshot(p.snapshot.is_patient, p.snapshot.name, p.snapshot.value);
      written = write_snapshots();
    }
    if (!slot.passivating || slot.token != p.token)
      return;  // used since: stays
    slot.passivating = false;
    if (!written) {
      slot.dirty = true;  // the next checkpoint asks it again
      return;
    }
    self->send_exit(slot.actor, caf::exit_reason::user_shutdown);
    probe->on_passivated(!p.snapshot.is_patient);
    auto& count = p.snapshot.is_patient ? ctx->counters->patients : ctx->counters->devices;
    count.fetch_sub(1, std::memory_order_relaxed);
    if (p.wake_ms != 0)
      wakes.add(p.snapshot.name, p.wake_ms);
    table.erase(i);
  }

  // A patient's registry record changed. Its twin reloads it; a patient
  // without a live twin (passivated, or not used since the start) that has
  // devices is activated, so that a device attached now is watched for
  // silence from now on.
  void registry_changed(auto* self, const std::string& name) {
    auto i = patients.find(name);
    if (i != patients.end()) {
      if (i->second.actor)
        self->send(used(i->second).actor, registry_atom::value);
      return;
    }
    auto rec = storage::registry{*ctx->store}.get_patient(name);
    if (rec && *rec && !(*rec)->devices.empty())
      patient(self->system(), name);  // loads the record as it activates
  }

  void shutdown(auto* self) {
    stop_twins(self);
    self->quit();
  }
};

shard_actor::behavior_type shard(shard_actor::stateful_pointer<shard_state> self, uint32_t index,
                                 const twin_context* ctx, std::shared_ptr<shard_probe> probe) {
  self->state.index = index;
  self->state.self_addr = self->address();
  self->state.ctx = ctx;
  self->state.probe = std::move(probe);
  self->state.idle = passivation_clock{ctx->settings.passivate_after_ms};
  self->state.live_since_ms = ctx->now_ms();
  self->delayed_send(self, std::chrono::milliseconds{ctx->settings.device_tick_ms},
                     health_tick_atom::value);
  if (self->state.idle.enabled())
    self->delayed_send(self, self->state.idle.sweep_interval(), passivate_sweep_atom::value);
  return {
      [=](apply_atom, const shard_work& w) { self->state.apply(self, w); },
      [=](health_tick_atom) { self->state.health_tick(self); },
      [=](passivate_sweep_atom) { self->state.sweep(self); },
      [=](passivated_atom, const passivation& p) {
        auto& st = self->state;
        if (p.snapshot.is_patient)
          st.passivated(self, st.patients, p);
        else
          st.passivated(self, st.devices, p);
      },
      [=](apply_atom, const replay_work& r) { self->state.apply(self, r); },
      [=](checkpoint_atom, checkpoint_round_ptr& r) { self->state.checkpoint(self, std::move(r)); },
      [=](snapshot_done_atom, const twin_snapshot& s) { self->state.snapshot_done(self, s); },
      [=](snapshot_save_atom, const twin_snapshot& s) {
        self->state.snapshot_save(s.is_patient, s.name, s.value);
      },
      // Queries go on to the twin, which answers the caller (callers never
      // see a twin's activation; only the shard addresses twins).
      [=](device_view_atom, const std::string& name) -> caf::result<device_view> {
        self->delegate(self->state.device(self->system(), name).actor, view_atom::value);
        return caf::delegated<device_view>{};
      },
      [=](patient_view_atom, const std::string& name) -> caf::result<patient_view> {
        auto& slot = self->state.patient(self->system(), name);
        if (slot.erased)
          return caf::make_error(storage::errc::erased);
        self->delegate(slot.actor, view_atom::value);
        return caf::delegated<patient_view>{};
      },
      [=](series_atom, const series_query& q) -> caf::result<series_cursor> {
        auto& slot = self->state.patient(self->system(), q.patient);
        if (slot.erased)
          return caf::make_error(storage::errc::erased);
        self->delegate(slot.actor, series_atom::value, q.metric);
        return caf::delegated<series_cursor>{};
      },
      [=](resolve_atom, const hand_resolution& r) -> caf::result<alert_record> {
        auto& slot = self->state.patient(self->system(), r.patient);
        if (slot.erased)
          return caf::make_error(storage::errc::erased);
        self->delegate(slot.actor, resolve_atom::value, alert_action{r.alert, r.who, r.note});
        return caf::delegated<alert_record>{};
      },
      [=](erase_atom, twin_erasure& e) {
        auto name = e.name;
        self->state.erase(self, name, std::move(e.done));
        self->state.touched(name);
      },
      [=](registry_atom, const std::string& patient) {
        self->state.registry_changed(self, patient);
        self->state.touched(patient);
      },
      [=](count_atom) {
        auto& p = self->state.patients;
        auto live = std::count_if(p.begin(), p.end(), [](auto& kv) { return !kv.second.erased; });
        return twin_counts{self->state.devices.size(), static_cast<size_t>(live)};
      },
      [=](forget_atom) { self->state.forget(self); },
      [=](forget_patient_atom, const std::string& patient) { self->state.forget_patient(self, patient); },
      [=](shutdown_atom) { self->state.shutdown(self); },
  };
}

}  // namespace

std::vector<shard_actor> spawn_shards(caf::actor_system& sys, uint32_t shards,
                                      const twin_context& ctx, prometheus::Registry& metrics) {
  auto probe = std::make_shared<shard_probe>(metrics);
  std::vector<shard_actor> out;
  out.reserve(shards);
  for (uint32_t i = 0; i < shards; ++i)
    out.push_back(sys.spawn(shard, i, &ctx, probe));
  return out;
}

}  // namespace healthtwin::actors
