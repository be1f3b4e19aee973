// The patient model's state in twin snapshots: version 4; version 3
// (before NEWS2 observations) and version 2 (before frames, quality and
// two-sided thresholds) read and converted.
#include <algorithm>

#include "actors/models/patient_model.hpp"
#include "actors/models/state_codec.hpp"

namespace healthtwin::models {

namespace {

constexpr uint8_t state_version = 4;
constexpr uint8_t oldest_version = 2;

void put_condition(state_writer& w, const alert_condition& c) {
  auto& s = c.save();
  w.put(static_cast<uint8_t>(s.active));
  for (auto v : s.at_least_since)
    w.put(v);
  w.put(s.easing_since);
  for (auto v : s.samples_at_least)
    w.put(v);
}

void get_condition(state_reader& r, alert_condition& c, uint8_t version) {
  alert_condition::state s;
  s.active = static_cast<priority>(std::min<uint8_t>(r.get<uint8_t>(), 3));
  for (auto& v : s.at_least_since)
    v = r.get<int64_t>();
  s.easing_since = r.get<int64_t>();
  if (version >= 3)
    for (auto& v : s.samples_at_least)
      v = r.get<uint16_t>();
  else  // version 2 counted no samples: take the onset as met
    for (int p = 1; p <= 3; ++p)
      s.samples_at_least[p] = s.at_least_since[p] >= 0 ? UINT16_MAX : 0;
  c.restore(s);
}

}  // namespace

/// Reads and writes patient_model's private state.
struct patient_model_codec {
  static void put(state_writer& w, const patient_model& m) {
    w.put(state_version);
    w.put(m.newest_ms_);
    for (uint8_t n = 1; n <= metric_count; ++n) {
      auto& v = m.vitals_[n];
      w.put(static_cast<uint8_t>(v.present));
      w.put(v.value);
      w.put(v.time_ms);
      w.put_string(v.source_device);
      put_condition(w, m.threshold_high_[n]);
      put_condition(w, m.threshold_low_[n]);
      put_condition(w, m.baseline_condition_[n]);
      put_condition(w, m.quality_condition_[n]);
      put_condition(w, m.no_signal_condition_[n]);
      auto& b = m.baselines_[n].save();
      w.put(b.mean);
      w.put(b.var);
      w.put(b.first_ms);
      w.put(b.last_ms);
      w.put(b.n);
      w.put(static_cast<uint8_t>(b.started));
      w.put(b.last_kept_ms);
      w.put(static_cast<uint8_t>(b.warmup.size()));
      for (auto x : b.warmup)
        w.put(x);
      auto& f = m.forecasts_[n].save();
      w.put(f.level);
      w.put(f.trend);
      w.put(f.first_ms);
      w.put(f.last_ms);
      w.put(f.n);
      w.put(f.residual_var);
      w.put(f.interval_ms);
      auto& fz = m.frozen_[n];
      w.put(fz.value);
      w.put(fz.since_ms);
      w.put(fz.samples);
      auto& j = m.jumps_[n].save();
      w.put(j.reference);
      w.put(j.reference_ms);
      w.put(static_cast<uint8_t>(j.has_reference));
      w.put(j.candidate);
      w.put(j.candidate_since);
      w.put(j.candidate_samples);
      w.put(j.first_value);
      w.put(j.previous.value);
      w.put(j.previous.time_ms);
      w.put(m.sampling_[n].last_valid_ms);
      for (auto x : m.sampling_[n].intervals_ms)
        w.put(x);
      w.put(static_cast<uint8_t>(m.sampling_[n].seen));
      w.put(static_cast<uint8_t>(m.sampling_[n].missing_since_valid));
      w.put(m.sampling_[n].observed);
      w.put(m.sampling_[n].observed_ms);
    }
    put_condition(w, m.news2_condition_);
    put_condition(w, m.news2_rising_);
    for (auto& c : m.trend_condition_)
      put_condition(w, c);
    auto points = m.news2_history_.points();
    w.put(static_cast<uint8_t>(points.size()));
    for (auto& p : points) {
      w.put(p.time_ms);
      w.put(p.total);
      w.put(static_cast<uint8_t>(p.complete));
    }
  }

  static bool get(state_reader& r, patient_model& m) {
    auto version = r.get<uint8_t>();
    if (version < oldest_version || version > state_version)
      return false;
    m.newest_ms_ = r.get<int64_t>();
    for (uint8_t n = 1; n <= metric_count; ++n) {
      auto& v = m.vitals_[n];
      v.present = r.get<uint8_t>() != 0;
      v.value = r.get<double>();
      v.time_ms = r.get<int64_t>();
      v.source_device = r.get_string();
      if (version >= 3) {
        get_condition(r, m.threshold_high_[n], version);
        get_condition(r, m.threshold_low_[n], version);
      } else {
        alert_condition one;
        get_condition(r, one, version);
        (low_side(m, static_cast<metric>(n)) ? m.threshold_low_[n] : m.threshold_high_[n]) = one;
      }
      get_condition(r, m.baseline_condition_[n], version);
      get_condition(r, m.quality_condition_[n], version);
      if (version >= 3)
        get_condition(r, m.no_signal_condition_[n], version);
      ewma_baseline::state b;
      b.mean = r.get<double>();
      b.var = r.get<double>();
      b.first_ms = r.get<int64_t>();
      b.last_ms = r.get<int64_t>();
      b.n = r.get<uint32_t>();
      if (version >= 3) {
        b.started = r.get<uint8_t>() != 0;
        b.last_kept_ms = r.get<int64_t>();
        auto kept = r.get<uint8_t>();
        if (kept > ewma_baseline::warmup_kept)
          return false;
        for (uint8_t k = 0; k < kept; ++k)
          b.warmup.push_back(r.get<float>());
      } else {  // warmed up as version 2 judged it (60 samples, 30 min)
        b.started = b.n >= 60 && b.last_ms - b.first_ms >= 30 * 60'000;
      }
      m.baselines_[n].restore(std::move(b));
      holt_forecaster::state f;
      f.level = r.get<double>();
      f.trend = r.get<double>();
      f.first_ms = r.get<int64_t>();
      f.last_ms = r.get<int64_t>();
      f.n = r.get<uint32_t>();
      if (version >= 3) {
        f.residual_var = r.get<double>();
        f.interval_ms = r.get<double>();
      }
      m.forecasts_[n].restore(f);
      auto& fz = m.frozen_[n];
      fz.value = r.get<double>();
      fz.since_ms = r.get<int64_t>();
      fz.samples = r.get<uint32_t>();
      jump_filter::state j;
      j.reference = r.get<double>();
      j.reference_ms = r.get<int64_t>();
      if (version >= 3) {
        j.has_reference = r.get<uint8_t>() != 0;
        j.candidate = r.get<double>();
        j.candidate_since = r.get<int64_t>();
        j.candidate_samples = r.get<uint16_t>();
        j.first_value = r.get<double>();
        j.previous.value = r.get<double>();
        j.previous.time_ms = r.get<int64_t>();
        m.sampling_[n].last_valid_ms = r.get<int64_t>();
        for (auto& x : m.sampling_[n].intervals_ms)
          x = r.get<float>();
        m.sampling_[n].seen = r.get<uint8_t>() != 0;
        m.sampling_[n].missing_since_valid = r.get<uint8_t>() != 0;
        if (version >= 4) {  // else observed_ms 0: NEWS2 scores the latest value
          m.sampling_[n].observed = r.get<double>();
          m.sampling_[n].observed_ms = r.get<int64_t>();
        }
      } else {
        j.has_reference = j.reference_ms >= 0;  // -1 was "none" in version 2
        (void)r.get<int64_t>();  // the jump's start: held readings are not kept
        m.sampling_[n].last_valid_ms = v.time_ms;
        m.sampling_[n].seen = v.present;
      }
      m.jumps_[n].restore(j);
    }
    get_condition(r, m.news2_condition_, version);
    get_condition(r, m.news2_rising_, version);
    for (auto& c : m.trend_condition_)
      get_condition(r, c, version);
    auto count = r.get<uint8_t>();
    std::vector<news2_point> points;
    for (uint8_t k = 0; k < count; ++k) {
      news2_point p;
      p.time_ms = r.get<int64_t>();
      p.total = r.get<uint8_t>();
      p.complete = r.get<uint8_t>() != 0;
      points.push_back(p);
    }
    return r.ok() && r.done() && m.news2_history_.restore(points);
  }

  // Version 2 had one threshold condition per metric: it takes the side of
  // the latest value (the alert it keeps open is about that value).
  static bool low_side(const patient_model& m, metric metric_) {
    auto& v = m.vitals_[static_cast<size_t>(metric_)];
    auto& custom = m.settings_.limits[static_cast<size_t>(metric_)];
    auto limits = custom ? custom : default_limits(metric_);
    if (!limits || !v.present)
      return false;
    return limits->low_level_of(v.value, limits->hysteresis) > limits->high_level_of(v.value, limits->hysteresis);
  }
};

std::string patient_model::encode() const {
  state_writer w;
  patient_model_codec::put(w, *this);
  return w.take();
}

bool patient_model::decode(std::string_view bytes) {
  state_reader r{bytes};
  patient_model m{news2_settings_};
  m.settings_ = settings_;
  if (!patient_model_codec::get(r, m))
    return false;
  m.rescore();
  *this = std::move(m);
  return true;
}

}  // namespace healthtwin::models
