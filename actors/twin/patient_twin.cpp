#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/models/patient_model.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/twin/twin.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/registry.hpp"
#include "storage/series_table.hpp"
#include "storage/twin_table.hpp"

namespace healthtwin::actors {

namespace {

using models::metric;
using models::metric_count;
using models::twin_kind;

constexpr size_t news2_condition = 0;  // alert_ids index; thresholds use the metric number

std::string_view band_name(models::news2_band b) {
  switch (b) {
    case models::news2_band::high: return "high (emergency response)";
    case models::news2_band::medium: return "medium (urgent review)";
    case models::news2_band::low_medium: return "low-medium (single parameter 3)";
    case models::news2_band::low: break;
  }
  return "low";
}

struct series_slot {
  storage::series_chunk_builder open;
  uint32_t chunk_no = 0;
};

struct patient_state {
  static constexpr const char* name = "patient_twin";

  const twin_context* ctx = nullptr;
  std::string twin_name;
  std::string ward;
  std::string bed;
  bool spo2_scale2 = false;
  std::vector<std::string> devices;
  uint64_t applied_position = 0;
  models::patient_model model;
  std::array<series_slot, metric_count + 1> series;
  std::array<std::string, metric_count + 1> alert_ids;
  uint64_t readings_applied = 0;
  uint64_t alerts_raised = 0;
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
    if (spo2_scale2 != (*rec)->spo2_scale2) {
      spo2_scale2 = (*rec)->spo2_scale2;
      model.set_spo2_scale2(spo2_scale2);
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
    applied_position = s.applied_lsn();
    readings_applied = s.readings_applied();
    alerts_raised = s.alerts_raised();
    for (auto& v : s.vitals())
      if (auto m = models::metric_from_number(v.metric()))
        model.restore_vital(*m, v.value(), v.time_ms(), v.source_device());
    for (auto& c : s.conditions()) {
      auto kind = static_cast<models::alert_kind>(c.kind());
      auto m = static_cast<metric>(c.metric());
      model.policy().restore(kind, m, static_cast<models::priority>(c.level()));
      size_t idx = kind == models::alert_kind::news2 ? news2_condition : c.metric();
      if (idx < alert_ids.size())
        alert_ids[idx] = c.alert_id();
    }
    for (auto& c : s.open_chunks()) {
      if (c.metric() == 0 || c.metric() > metric_count)
        continue;
      auto& slot = series[c.metric()];
      slot.chunk_no = c.chunk_no();
      if (!storage::series_chunk_builder::restore(c.samples(), slot.open))
        spdlog::error("patient twin: open series chunk does not decode; dropped");
    }
    model.rescore();
  }

  bool save() {
    internal::PatientSnapshot s;
    s.set_applied_lsn(applied_position);
    s.set_readings_applied(readings_applied);
    s.set_alerts_raised(alerts_raised);
    for (uint8_t n = 1; n <= metric_count; ++n) {
      auto m = static_cast<metric>(n);
      auto& v = model.latest(m);
      if (v.present) {
        auto* out = s.add_vitals();
        out->set_metric(n);
        out->set_value(v.value);
        out->set_time_ms(v.time_ms);
        out->set_source_device(v.source_device);
      }
      auto level = model.policy().threshold_level(m);
      if (level != models::priority::none) {
        auto* c = s.add_conditions();
        c->set_kind(static_cast<uint32_t>(models::alert_kind::threshold));
        c->set_metric(n);
        c->set_level(static_cast<uint32_t>(level));
        c->set_alert_id(alert_ids[n]);
      }
      auto& slot = series[n];
      if (slot.chunk_no > 0 || !slot.open.empty()) {
        auto* c = s.add_open_chunks();
        c->set_metric(n);
        c->set_chunk_no(slot.chunk_no);
        c->set_samples(slot.open.body());
      }
    }
    if (model.policy().news2_level() != models::priority::none) {
      auto* c = s.add_conditions();
      c->set_kind(static_cast<uint32_t>(models::alert_kind::news2));
      c->set_level(static_cast<uint32_t>(model.policy().news2_level()));
      c->set_alert_id(alert_ids[news2_condition]);
    }
    storage::twin_table snapshots{*ctx->store, storage::column::twins};
    if (auto err = snapshots.put_now(twin_kind::patient, twin_name, s.SerializeAsString())) {
      spdlog::error("patient twin: writing snapshot failed: {}", storage::describe(err));
      return false;
    }
    dirty = false;
    return true;
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
      spdlog::error("patient twin: writing a series chunk failed: {}", storage::describe(err));
      return;
    }
    ++slot.chunk_no;
    slot.open = storage::series_chunk_builder{};
  }

  std::string describe(const models::finding& f) const {
    if (f.kind == models::alert_kind::news2) {
      auto& n = model.news2();
      return fmt::format("NEWS2 {}{}: {}", n.total, n.complete ? "" : " (incomplete: lower bound)",
                         band_name(n.band));
    }
    auto limits = models::default_limits(f.subject);
    bool low = limits && limits->medium_at_or_below &&
               f.value <= *limits->medium_at_or_below + limits->hysteresis;
    return fmt::format("{} {}: {:g} {}", models::to_string(f.subject), low ? "low" : "high",
                       f.value, models::unit_of(f.subject));
  }

  void on_finding(caf::event_based_actor* self, const models::finding& f, int64_t time_ms) {
    size_t idx = f.kind == models::alert_kind::news2 ? news2_condition
                                                     : static_cast<size_t>(f.subject);
    auto& id = alert_ids[idx];
    using change = models::finding::change;
    if (f.what == change::cleared) {
      if (!id.empty())
        self->send(ctx->alert_hub, alert_resolve_atom::value, twin_name + "/alerts/" + id,
                   f.value, time_ms);
      id.clear();
      return;
    }
    if (f.what != change::raised && !id.empty()) {
      self->send(ctx->alert_hub, alert_update_atom::value, twin_name + "/alerts/" + id, f.level,
                 f.value, describe(f), time_ms);
      return;
    }
    id = std::to_string(++alerts_raised);
    alert_record a;
    a.name = twin_name + "/alerts/" + id;
    a.patient = twin_name;
    a.ward = ward;
    a.kind = f.kind;
    a.subject = f.subject;
    a.level = f.level;
    a.value = f.value;
    a.message = describe(f);
    a.raise_time_ms = time_ms;
    self->send(ctx->alert_hub, alert_raise_atom::value, std::move(a));
  }

  void apply(caf::event_based_actor* self, const twin_work& work) {
    auto& batch = *work.batch;
    if (batch.position > applied_position) {
      for (auto idx : work.entries) {
        auto& entry = batch.entries[idx];
        for (auto& r : entry.readings) {
          if (!models::is_patient_metric(r.metric))
            continue;
          append_series(r.metric, r.time_ms, r.value);
          findings.clear();
          model.apply(r.metric, r.value, r.time_ms, entry.device, findings);
          for (auto& f : findings)
            on_finding(self, f, r.time_ms);
          ++readings_applied;
        }
      }
      applied_position = batch.position;
      dirty = true;
    }
    ctx->flow->pending.fetch_sub(1, std::memory_order_relaxed);
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

caf::behavior patient_twin(caf::stateful_actor<patient_state>* self, std::string name,
                           const twin_context* ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  st.twin_name = std::move(name);
  st.model = models::patient_model{ctx->settings.news2};
  st.load_snapshot();
  st.load_registry();
  return {
      [=](apply_atom, const twin_work& w) { self->state.apply(self, w); },
      [=](snapshot_atom, const std::string&, twin_context_ref) {
        bool ok = !self->state.dirty || self->state.save();
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), snapshot_done_atom::value,
                   ok);
      },
      [=](view_atom) { return self->state.view(); },
      [=](series_atom, uint8_t m) { return self->state.cursor(static_cast<metric>(m)); },
      [=](registry_atom) { self->state.load_registry(); },
  };
}

}  // namespace

caf::actor spawn_patient_twin(caf::actor_system& sys, std::string name, const twin_context* ctx) {
  return sys.spawn<caf::lazy_init>(patient_twin, std::move(name), ctx);
}

}  // namespace healthtwin::actors
