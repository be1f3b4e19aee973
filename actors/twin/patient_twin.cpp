#include <algorithm>
#include <atomic>
#include <chrono>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/models/device_health.hpp"
#include "actors/models/patient_model.hpp"
#include "actors/models/sequence_window.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/twin/alert_text.hpp"
#include "actors/twin/patient_settings_record.hpp"
#include "actors/twin/twin.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/registry.hpp"
#include "storage/series_table.hpp"
#include "storage/twin_table.hpp"

namespace healthtwin::actors {

namespace {

// A full or failing disk fails the chunk write of every sample of every
// patient: one line per 10 s, with how many failures it stands for, keeps
// the log readable (and the twins fast).
void report_chunk_failure(const caf::error& err) {
  static std::atomic<int64_t> next_ms{0};
  static std::atomic<uint64_t> unreported{0};
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  auto due = next_ms.load(std::memory_order_relaxed);
  if (now < due || !next_ms.compare_exchange_strong(due, now + 10'000)) {
    unreported.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  spdlog::error("patient twin: writing a series chunk failed ({} more failures since the last "
                "report): {}",
                unreported.exchange(0), storage::describe(err));
}

using models::alert_kind;
using models::metric;
using models::metric_count;
using models::twin_kind;


struct series_slot {
  storage::series_chunk_builder open;
  uint32_t chunk_no = 0;
};

/// A reading waiting for its frame (patient_state::apply_frames).
struct pending_reading {
  reading r;
  const std::string* device;  // the batch's entry, alive while it is applied
  uint32_t order;             // position in the batch: ties keep it
};

/// Scratch of apply_frames, per scheduler thread (a twin applies its work
/// in one go on one thread): no twin keeps buffers of its own.
thread_local std::vector<pending_reading> pending;
thread_local std::vector<models::frame_reading> frame;

/// The alert a raised condition is tracked under.
struct open_alert {
  alert_kind kind{};
  metric subject{};
  uint8_t index = 0;
  std::string device;
  std::string id;

  bool is(const models::finding& f) const {
    return kind == f.kind && subject == f.subject && index == f.index && device == f.device;
  }
};

struct patient_state {
  static constexpr const char* name = "patient_twin";

  const twin_context* ctx = nullptr;
  caf::actor_addr shard;  // writes the snapshots
  models::news2_result summary;  // last NEWS2 given to ctx->index
  bool summarised = false;
  std::string twin_name;
  std::string ward;
  std::string bed;
  std::vector<std::string> devices;
  uint64_t applied_position = 0;
  // While a committed batch is applied: its commit time (the alerts it
  // raises carry it, for the reading-to-alert latency); 0 otherwise.
  int64_t committing_ms = 0;
  models::patient_model model;
  models::device_health health;
  std::array<series_slot, metric_count + 1> series;
  std::vector<open_alert> alerts;
  // Sequence numbers applied per device: a reading delivered twice (a
  // resend around a shard hand-off, docs/cluster.md) is applied once.
  std::vector<std::pair<std::string, models::sequence_window>> device_windows;
  uint64_t readings_applied = 0;
  uint64_t alerts_raised = 0;
  int64_t active_since_ms = 0;  // node time its shard became live: grace for offline devices
  bool settings_logged = false;  // settings came from a clinician (else registry defaults)
  bool dirty = false;
  std::vector<models::finding> findings;  // scratch, reused

  void load_registry() {
    storage::registry reg{*ctx->store};
    auto rec = reg.get_patient(twin_name);
    if (!rec) {
      spdlog::error("patient twin: reading registry failed: {}", storage::describe(rec.error()));
      return;
    }
    if (!*rec)
      return;
    ward = (*rec)->ward;
    bed = (*rec)->bed;
    devices = (*rec)->devices;
    if (ctx->index)
      ctx->index->set_registry(twin_name, ward, bed);
    // A device attached since the snapshot counts as seen now: that goes
    // into the next snapshot (a passivation's), or the twin activated again
    // would watch it from its own activation.
    auto& tracked = health.devices();
    if (tracked.size() != devices.size() ||
        !std::equal(devices.begin(), devices.end(), tracked.begin(),
                    [](const std::string& n, const auto& d) { return n == d.name; }))
      dirty = true;
    health.set_devices(devices, ctx->now_ms());
    if (!settings_logged && model.settings().spo2_scale2 != (*rec)->spo2_scale2) {
      auto settings = model.settings();  // the model holds the patient's settings
      settings.spo2_scale2 = (*rec)->spo2_scale2;
      model.configure(settings);
    }
  }

  void load_snapshot() {
    storage::twin_table snapshots{*ctx->store, storage::column::twins};
    auto bytes = snapshots.get(twin_kind::patient, twin_name);
    if (!bytes) {
      spdlog::error("patient twin: reading snapshot failed: {}", storage::describe(bytes.error()));
      return;
    }
    if (!*bytes)
      return;
    internal::PatientSnapshot s;
    if (!s.ParseFromString(**bytes)) {
      spdlog::error("patient twin: snapshot does not parse; starting from the log");
      return;
    }
    models::patient_settings settings;
    if (s.has_settings()) {
      if (auto bad = from_record(s.settings(), settings))
        spdlog::error("patient twin: snapshot settings invalid ({}); using defaults", *bad);
      else
        settings_logged = true;
    }
    model.configure(settings);
    if (!model.decode(s.model_state()) || !health.decode(s.device_health())) {
      spdlog::error("patient twin: snapshot model state does not decode; starting from the log");
      model = models::patient_model{ctx->settings.news2};
      model.configure(settings);
      health = models::device_health{};
      return;
    }
    applied_position = s.applied_lsn();
    readings_applied = s.readings_applied();
    for (auto& w : s.device_windows()) {
      std::array<uint64_t, 4> bits{};
      for (int k = 0; k < w.window().seen_size() && k < 4; ++k)
        bits[static_cast<size_t>(k)] = w.window().seen(k);
      device_windows.emplace_back(w.device(),
                                  models::sequence_window::restore(w.window().highest(), bits));
    }
    alerts_raised = s.alerts_raised();
    for (auto& c : s.conditions()) {
      if (c.kind() == 0 || c.kind() > models::alert_kind_count || c.metric() > metric_count)
        continue;
      alerts.push_back(open_alert{static_cast<alert_kind>(c.kind()), static_cast<metric>(c.metric()),
                                  static_cast<uint8_t>(c.index()), c.device(), c.alert_id()});
      // A threshold alert of a snapshot written with one condition per
      // metric (index 0) follows the side its condition was decoded to.
      auto& a = alerts.back();
      if (a.kind == alert_kind::threshold && model.level(a.kind, a.subject, a.index) == models::priority::none)
        a.index = a.index == 0 ? 1 : 0;
    }
    for (auto& c : s.open_chunks()) {
      if (c.metric() == 0 || c.metric() > metric_count)
        continue;
      auto& slot = series[c.metric()];
      slot.chunk_no = c.chunk_no();
      if (!storage::series_chunk_builder::restore(c.samples(), c.count(), slot.open))
        spdlog::error("patient twin: open series chunk does not decode; dropped");
    }
  }

  // State that is not in the log goes to the shard to be written now.
  void save(auto* self) {
    save_snapshot(self, shard, ctx, twin_kind::patient, twin_name, dirty, [&] { return encode(); });
  }

  std::string encode() const {
    internal::PatientSnapshot s;
    s.set_applied_lsn(applied_position);
    s.set_readings_applied(readings_applied);
    s.set_alerts_raised(alerts_raised);
    s.set_model_state(model.encode());
    if (auto& n = model.news2(); n.time_ms != 0) {
      auto* summary = s.mutable_news2();
      summary->set_total(n.total);
      summary->set_complete(n.complete);
      summary->set_band(static_cast<uint32_t>(n.band));
    }
    s.set_device_health(health.encode());
    for (auto& [device, window] : device_windows) {
      if (std::find(devices.begin(), devices.end(), device) == devices.end())
        continue;  // detached: none of its readings come for this patient again
      auto* w = s.add_device_windows();
      w->set_device(device);
      w->mutable_window()->set_highest(window.highest());
      for (auto bits : window.seen_bits())
        w->mutable_window()->add_seen(bits);
    }
    if (settings_logged)
      to_record(model.settings(), *s.mutable_settings());
    for (auto& a : alerts) {
      auto* c = s.add_conditions();
      c->set_kind(static_cast<uint32_t>(a.kind));
      c->set_metric(static_cast<uint32_t>(a.subject));
      c->set_index(a.index);
      c->set_device(a.device);
      c->set_alert_id(a.id);
    }
    for (uint8_t n = 1; n <= metric_count; ++n) {
      auto& slot = series[n];
      if (slot.chunk_no > 0 || !slot.open.empty()) {
        auto* c = s.add_open_chunks();
        c->set_metric(n);
        c->set_chunk_no(slot.chunk_no);
        c->set_samples(slot.open.body());
        c->set_count(slot.open.count());
      }
    }
    return s.SerializeAsString();
  }

  void append_series(metric m, int64_t time_ms, double value) {
    auto& slot = series[static_cast<size_t>(m)];
    slot.open.append(time_ms, value);
    auto& s = ctx->settings;
    if (slot.open.count() < s.chunk_samples && slot.open.max_time() - slot.open.min_time() < s.chunk_span_ms)
      return;
    storage::series_table table{*ctx->store};
    auto err = table.put_chunk(twin_name, static_cast<uint8_t>(m), slot.chunk_no, slot.open.finish());
    if (err) {
      // Keep the chunk open (it is in the snapshot); the next sample retries.
      report_chunk_failure(err);
      return;
    }
    ++slot.chunk_no;
    slot.open = storage::series_chunk_builder{};
  }

  // Clinical and data-driven findings get ids from a counter that replay
  // reproduces; offline findings (timer-driven, not in the log) get ids
  // from the node clock so that they never collide after a restart.
  std::string next_id(const models::finding& f, int64_t time_ms) {
    if (f.kind == alert_kind::device_offline)
      return fmt::format("off-{}-{}", time_ms, alerts_raised);
    return std::to_string(++alerts_raised);
  }

  void on_finding(auto* self, const models::finding& f, int64_t time_ms) {
    auto i = std::find_if(alerts.begin(), alerts.end(), [&](const open_alert& a) { return a.is(f); });
    auto prefix = twin_name + "/alerts/";
    using change = models::finding::change;
    if (f.what == change::cleared) {
      if (i != alerts.end()) {
        self->send(ctx->alert_hub, alert_resolve_atom::value,
                   alert_resolution{prefix + i->id, f.value, time_ms});
        alerts.erase(i);
      }
      return;
    }
    if (i != alerts.end()) {
      self->send(ctx->alert_hub, alert_update_atom::value,
                 alert_update{prefix + i->id, f.level, f.value, describe_finding(f, model, time_ms),
                              f.predicted_ms});
      return;
    }
    auto id = next_id(f, time_ms);
    alert_record a;
    a.name = prefix + id;
    a.patient = twin_name;
    a.ward = ward;
    a.kind = f.kind;
    a.subject = f.subject;
    a.device = std::string{f.device};
    a.level = f.level;
    a.value = f.value;
    a.predicted_time_ms = f.predicted_ms;
    a.message = describe_finding(f, model, time_ms);
    a.raise_time_ms = time_ms;
    a.committed_ms = committing_ms;
    alerts.push_back(open_alert{f.kind, f.subject, f.index, a.device, std::move(id)});
    self->send(ctx->alert_hub, alert_raise_atom::value, std::move(a));
  }

  void apply(auto* self, const twin_work& work) {
    auto& batch = *work.batch;
    if (batch.position > applied_position) {
      committing_ms = batch.receive_time_ms;
      for (auto idx : work.entries) {
        auto& entry = batch.entries[idx];
        if (entry.clinician) {
          apply_frames(self);  // what came before it, first
          apply_clinician(self, entry);
          continue;
        }
        if (entry.sequence_reset) {
          window_of(entry.device) = models::sequence_window{};
          continue;
        }
        findings.clear();
        int64_t newest = 0;
        for (auto& r : entry.readings)
          newest = std::max(newest, r.time_ms);
        health.on_data(entry.device, batch.receive_time_ms, newest, findings);
        for (auto& f : findings)
          on_finding(self, f, batch.receive_time_ms);
        auto& window = window_of(entry.device);
        for (auto& r : entry.readings) {
          if (window.admit(r.sequence) == models::sequence_window::verdict::duplicate)
            continue;  // applied before (delivered again around a hand-off)
          if (r.metric == metric::battery) {
            findings.clear();
            health.on_battery(entry.device, r.value, r.time_ms, model.settings(), findings);
            for (auto& f : findings)
              on_finding(self, f, r.time_ms);
            continue;
          }
          pending.push_back(pending_reading{r, &entry.device, static_cast<uint32_t>(pending.size())});
        }
      }
      apply_frames(self);
      committing_ms = 0;
      applied_position = batch.position;
      dirty = true;
      summarise();
    }
    ctx->flow->pending.fetch_sub(1, std::memory_order_relaxed);
  }

  // The readings collected from a batch's entries, as frames: those with
  // one observation time together, in time order, so the model scores
  // NEWS2 once per frame whatever the order of its readings. Readings that
  // are not valid are stored as such (a marker in the series), not charted.
  void apply_frames(auto* self) {
    if (pending.empty())
      return;
    // In time order, readings of one time in the order they came (a stable
    // sort without stable_sort's buffer allocation per batch).
    auto by_time = [](const pending_reading& a, const pending_reading& b) {
      return a.r.time_ms < b.r.time_ms || (a.r.time_ms == b.r.time_ms && a.order < b.order);
    };
    if (!std::is_sorted(pending.begin(), pending.end(), by_time))  // most batches come in time order
      std::sort(pending.begin(), pending.end(), by_time);
    for (size_t i = 0; i < pending.size();) {
      auto t = pending[i].r.time_ms;
      frame.clear();
      for (; i < pending.size() && pending[i].r.time_ms == t; ++i) {
        auto& p = pending[i];
        auto q = models::effective_quality(p.r.metric, p.r.value, p.r.quality);
        append_series(p.r.metric, t, models::charted(q) ? p.r.value : storage::quality_marker(q));
        frame.push_back(models::frame_reading{p.r.metric, p.r.value, q, *p.device});
        ++readings_applied;
      }
      findings.clear();
      model.apply_frame(t, frame, findings);
      for (auto& f : findings)
        on_finding(self, f, t);
    }
    pending.clear();
  }

  models::sequence_window& window_of(const std::string& device) {
    for (auto& [name, w] : device_windows)
      if (name == device)
        return w;
    return device_windows.emplace_back(device, models::sequence_window{}).second;
  }

  // NEWS2 into the twin index when it changed (twin queries filter on it);
  // not before the first scored input.
  void summarise() {
    auto& n = model.news2();
    if (!ctx->index || n.time_ms == 0 || (summarised && n.total == summary.total &&
                        n.complete == summary.complete && n.band == summary.band))
      return;
    summarised = true;
    summary.total = n.total;
    summary.complete = n.complete;
    summary.band = n.band;
    ctx->index->set_news2(twin_name, n.total, n.complete, n.band);
  }

  // A clinician's settings (from this log position on) and observations
  // (ACVPU, oxygen: they count in NEWS2 with their own 12 h freshness).
  void apply_clinician(auto* self, const device_entry& entry) {
    if (entry.settings) {
      settings_logged = true;
      model.configure(entry.settings);
    }
    auto source = "clinician/" + entry.device;
    for (auto& r : entry.readings) {
      findings.clear();
      append_series(r.metric, r.time_ms, r.value);
      model.apply(r.metric, r.value, r.time_ms, source, findings);
      ++readings_applied;
      for (auto& f : findings)
        on_finding(self, f, r.time_ms);
    }
  }

  // Device health on the node clock: a device that stops sending is
  // reported even though no reading arrives to notice it.
  void tick(auto* self) {
    auto t = ctx->now_ms();
    findings.clear();
    health.tick(t, active_since_ms, model.settings(), findings);
    for (auto& f : findings)
      on_finding(self, f, t);
    // Offline alerts are not in the log: keep their ids in a snapshot now
    // so that a restart can still resolve them.
    if (!findings.empty())
      save(self);
  }

  // A clinician resolves an alert by hand: forget its condition (it is
  // raised again after its onset delay if still present) and keep that in
  // a snapshot now, since it is not in the log.
  void reset_condition(auto* self, std::string_view alert_name) {
    auto id = models::parse_alert_name(alert_name);
    if (!id)
      return;
    auto i = std::find_if(alerts.begin(), alerts.end(),
                          [&](const open_alert& a) { return a.id == id->id; });
    if (i == alerts.end())
      return;
    if (i->kind == alert_kind::device_offline || i->kind == alert_kind::battery_low ||
        i->kind == alert_kind::clock_drift)
      health.reset(i->kind, i->device);
    else
      model.reset(i->kind, i->subject, i->index, models::priority::none);
    alerts.erase(i);
    save(self);
  }

  patient_view view() const {
    patient_view v;
    v.name = twin_name;
    v.ward = ward;
    v.bed = bed;
    v.devices = devices;
    for (uint8_t n = 1; n <= metric_count; ++n) {
      auto& l = model.latest(static_cast<metric>(n));
      if (l.present)
        v.vitals.push_back(vital_view{static_cast<metric>(n), l.value, l.time_ms, l.source_device});
    }
    v.news2 = model.news2();
    v.settings = model.settings();
    v.news2_history = model.news2_history();
    v.news2_change_1h = model.news2_change(models::news2_rise_window_ms);
    v.readings_applied = readings_applied;
    return v;
  }

  series_cursor cursor(metric m) const {
    series_cursor c;
    if (static_cast<size_t>(m) >= series.size())
      return c;
    auto& slot = series[static_cast<size_t>(m)];
    c.closed_chunks = slot.chunk_no;
    c.open_samples.reserve(slot.open.count());
    storage::decode_body(slot.open.body(), slot.open.count(),
                         [&](storage::sample s) { c.open_samples.push_back(s); });
    return c;
  }
};

patient_twin_actor::behavior_type patient_twin(
    patient_twin_actor::stateful_pointer<patient_state> self, std::string name,
    const twin_context* ctx, caf::actor_addr shard, int64_t grace_from_ms) {
  auto& st = self->state;
  st.ctx = ctx;
  st.shard = std::move(shard);
  st.twin_name = std::move(name);
  st.model = models::patient_model{ctx->settings.news2};
  st.active_since_ms = grace_from_ms;
  st.load_snapshot();
  st.load_registry();
  st.summarise();
  return {
      [=](apply_atom, const twin_work& w) { self->state.apply(self, w); },
      [=](health_tick_atom) { self->state.tick(self); },
      [=](snapshot_atom, const snapshot_request&) {
        auto& st = self->state;
        answer_snapshot(self, st.ctx, twin_kind::patient, st.twin_name, st.dirty,
                        [&] { return st.encode(); });
      },
      [=](passivate_atom, const snapshot_request& r) {
        auto& st = self->state;
        answer_passivation(self, st.ctx, twin_kind::patient, r, st.dirty, [&] { return st.encode(); },
                           st.health.next_offline_ms(st.active_since_ms, st.model.settings()));
      },
      [=](view_atom) { return self->state.view(); },
      [=](series_atom, uint8_t m) { return self->state.cursor(static_cast<metric>(m)); },
      [=](registry_atom) { self->state.load_registry(); },
      [=](erase_atom, erase_completion_ptr& done) {
        // After every batch it was sent; the hub deletes the records.
        self->send(self->state.ctx->alert_hub, alert_erase_atom::value,
                   alert_erasure{self->state.twin_name, std::move(done)});
        self->quit();
      },
      [=](resolve_atom, const alert_action& a) -> caf::delegated<alert_record> {
        self->state.reset_condition(self, a.name);
        return self->delegate(self->state.ctx->alert_hub, alert_resolve_by_atom::value, a);
      },
  };
}

}  // namespace

patient_twin_actor spawn_patient_twin(caf::actor_system& sys, std::string name,
                                      const twin_context* ctx, caf::actor_addr shard,
                                      int64_t grace_from_ms) {
  return sys.spawn<caf::lazy_init>(patient_twin, std::move(name), ctx, std::move(shard),
                                   grace_from_ms);
}

namespace {

void read_stored_news2(storage::store& store, const std::string& patient,
                       patient_summary& summary) {
  auto bytes = storage::twin_table{store, storage::column::twins}.get(twin_kind::patient, patient);
  if (!bytes) {
    spdlog::error("twin index: reading a patient snapshot failed: {}",
                  storage::describe(bytes.error()));
    return;
  }
  internal::PatientSnapshot s;
  if (!*bytes || !s.ParseFromString(**bytes) || !s.has_news2())
    return;
  auto& n = s.news2();
  auto band = n.band();
  if (n.total() > 20 || band < static_cast<uint32_t>(models::news2_band::low) ||
      band > static_cast<uint32_t>(models::news2_band::high))
    return;  // not what a twin writes: leave it unknown
  summary.news2_known = true;
  summary.news2 = static_cast<uint8_t>(n.total());
  summary.news2_complete = n.complete();
  summary.news2_band = static_cast<models::news2_band>(band);
}

}  // namespace

caf::error seed_twin_index(storage::store& store, twin_index& index,
                           const std::function<bool(uint32_t shard)>& include) {
  return storage::registry{store}.for_each_patient(
      [&](const storage::patient_record& p) {
        if (store.patient_erased(p.name))
          return;
        patient_summary summary{p.ward, p.bed};
        read_stored_news2(store, p.name, summary);
        index.seed(p.name, std::move(summary));
      },
      include);
}

}  // namespace healthtwin::actors
