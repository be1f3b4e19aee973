#include "actors/models/patient_model.hpp"

#include <algorithm>
#include <cmath>

#include "actors/models/state_codec.hpp"

namespace healthtwin::models {

namespace {

constexpr uint8_t state_version = 1;

// Condition delays (data time). Documented in docs/alerts.md.
constexpr condition_timing threshold_timing{{0, 30'000, 15'000, 5'000}, 30'000};
constexpr condition_timing news2_timing{{0, 30'000, 30'000, 30'000}, 60'000};
constexpr condition_timing trend_timing{{0, 60'000, 60'000, 60'000}, 120'000};
constexpr condition_timing probe_off_timing{{0, 15'000, 15'000, 15'000}, 15'000};
constexpr condition_timing frozen_timing{{0, 0, 0, 0}, 30'000};

constexpr baseline_settings baseline_defaults{};
constexpr trend_settings trend_defaults{};

// Signal quality: SpO2 below this is a probe off the finger (no living,
// monitored patient reads it), so it is kept out of every clinical model.
constexpr double probe_off_spo2 = 50;
// Continuous signals that do not change for this long are frozen.
constexpr int64_t frozen_after_ms = 3 * 60'000;
constexpr uint32_t frozen_min_samples = 20;

bool has_frozen_check(metric m) {
  return m == metric::heart_rate || m == metric::respiration_rate;
}

}  // namespace

bool is_news2_input(metric m) noexcept {
  switch (m) {
    case metric::respiration_rate:
    case metric::spo2:
    case metric::oxygen_flow:
    case metric::systolic_bp:
    case metric::heart_rate:
    case metric::consciousness:
    case metric::temperature:
      return true;
    default:
      return false;
  }
}

double baseline_sd_floor(metric m) noexcept {
  switch (m) {
    case metric::heart_rate: return 3;
    case metric::respiration_rate: return 1.5;
    case metric::spo2: return 1;
    case metric::temperature: return 0.2;
    case metric::systolic_bp: return 6;
    case metric::diastolic_bp: return 4;
    case metric::glucose: return 8;
    default: return 0;
  }
}

std::optional<std::string> patient_settings::validate() const {
  for (uint8_t n = 1; n <= metric_count; ++n) {
    auto& l = limits[n];
    if (!l)
      continue;
    auto r = range_of(static_cast<metric>(n));
    auto in_range = [&](const std::optional<double>& v) {
      return !v || (std::isfinite(*v) && *v >= r.min && *v <= r.max);
    };
    if (!l->consistent() || !std::isfinite(l->hysteresis) || !in_range(l->high_at_or_below) ||
        !in_range(l->medium_at_or_below) || !in_range(l->medium_at_or_above) ||
        !in_range(l->high_at_or_above))
      return "limits." + std::string{to_string(static_cast<metric>(n))};
  }
  if (!(baseline_k >= 2 && baseline_k <= 10))
    return "baseline_k";
  if (baseline_min_duration_ms < 60'000 || baseline_min_duration_ms > 3'600'000)
    return "baseline_min_duration_ms";
  if (forecast_horizon_ms < 60'000 || forecast_horizon_ms > 7'200'000)
    return "forecast_horizon_ms";
  if (glucose_forecast_horizon_ms < 60'000 || glucose_forecast_horizon_ms > 7'200'000)
    return "glucose_forecast_horizon_ms";
  if (device_offline_after_ms < 10'000 || device_offline_after_ms > 86'400'000)
    return "device_offline_after_ms";
  if (!(battery_low_percent >= 0 && battery_low_percent <= 100))
    return "battery_low_percent";
  return std::nullopt;
}

void patient_model::configure(const patient_settings& s) {
  settings_ = s;
  rescore();
}

void patient_model::rescore() noexcept {
  news2_inputs in;
  auto take = [&](metric m) -> std::optional<observation> {
    auto& v = latest(m);
    if (!v.present)
      return std::nullopt;
    return observation{v.value, v.time_ms};
  };
  in.respiration_rate = take(metric::respiration_rate);
  in.spo2 = take(metric::spo2);
  in.oxygen_flow = take(metric::oxygen_flow);
  in.systolic_bp = take(metric::systolic_bp);
  in.pulse = take(metric::heart_rate);
  in.consciousness = take(metric::consciousness);
  in.temperature = take(metric::temperature);
  in.spo2_scale2 = settings_.spo2_scale2;
  news2_ = score_news2(in, newest_ms_, news2_settings_);
}

void patient_model::record_news2(int64_t t) {
  auto last = news2_ring_size_ == 0
                  ? nullptr
                  : &news2_ring_[(news2_ring_head_ + news2_ring_.size() - 1) % news2_ring_.size()];
  if (last && last->total == news2_.total && last->complete == news2_.complete)
    return;
  news2_ring_[news2_ring_head_] = news2_point{t, news2_.total, news2_.complete};
  news2_ring_head_ = static_cast<uint8_t>((news2_ring_head_ + 1) % news2_ring_.size());
  if (news2_ring_size_ < news2_ring_.size())
    ++news2_ring_size_;
}

std::vector<news2_point> patient_model::news2_history() const {
  std::vector<news2_point> out;
  auto start = (news2_ring_head_ + news2_ring_.size() - news2_ring_size_) % news2_ring_.size();
  for (size_t i = 0; i < news2_ring_size_; ++i)
    out.push_back(news2_ring_[(start + i) % news2_ring_.size()]);
  return out;
}

std::optional<int> patient_model::news2_change(int64_t window_ms) const {
  auto history = news2_history();
  auto at = newest_ms_ - window_ms;
  const news2_point* before = nullptr;
  for (auto& p : history)
    if (p.time_ms <= at)
      before = &p;
  if (!before)
    return std::nullopt;
  return static_cast<int>(news2_.total) - static_cast<int>(before->total);
}

alert_condition* patient_model::condition(alert_kind k, metric m, uint8_t index) noexcept {
  auto i = static_cast<size_t>(m);
  switch (k) {
    case alert_kind::threshold: return i < threshold_.size() ? &threshold_[i] : nullptr;
    case alert_kind::news2: return &news2_condition_;
    case alert_kind::baseline_anomaly:
      return i < baseline_condition_.size() ? &baseline_condition_[i] : nullptr;
    case alert_kind::trend_forecast:
      return index < trend_condition_.size() ? &trend_condition_[index] : nullptr;
    case alert_kind::signal_quality:
      return i < quality_condition_.size() ? &quality_condition_[i] : nullptr;
    default: return nullptr;
  }
}

priority patient_model::level(alert_kind k, metric m, uint8_t index) const noexcept {
  auto* c = const_cast<patient_model*>(this)->condition(k, m, index);
  return c ? c->level() : priority::none;
}

void patient_model::reset(alert_kind k, metric m, uint8_t index, priority level) noexcept {
  if (auto* c = condition(k, m, index))
    c->reset(level);
}

void patient_model::evaluate(alert_condition& c, priority target, int64_t t,
                             const condition_timing& timing, finding f,
                             std::vector<finding>& out) {
  if (auto change = c.evaluate(target, t, timing)) {
    f.level = change->level;
    f.previous = change->previous;
    f.what = change_of(change->level, change->previous);
    out.push_back(f);
  }
}

// Probe-off and frozen signals: technical conditions. Returns true when the
// reading is an artefact to keep out of the clinical models.
bool patient_model::quality(metric m, double v, int64_t t, const latest_vital& src,
                            std::vector<finding>& out) {
  auto i = static_cast<size_t>(m);
  finding f;
  f.kind = alert_kind::signal_quality;
  f.subject = m;
  f.value = v;
  f.device = src.source_device;
  if (m == metric::spo2) {
    bool off = v < probe_off_spo2;
    evaluate(quality_condition_[i], off ? priority::medium : priority::none, t, probe_off_timing, f,
             out);
    return off;
  }
  if (has_frozen_check(m)) {
    auto& fz = frozen_[i];
    if (fz.since_ms < 0 || v != fz.value) {
      fz = frozen_tracker{v, t, 1};
    } else {
      ++fz.samples;
    }
    bool frozen = fz.samples >= frozen_min_samples && t - fz.since_ms >= frozen_after_ms;
    evaluate(quality_condition_[i], frozen ? priority::low : priority::none, t, frozen_timing, f,
             out);
  }
  return false;
}

void patient_model::apply(metric m, double value, int64_t t, std::string_view source_device,
                          std::vector<finding>& out) {
  auto i = static_cast<size_t>(m);
  auto& v = vitals_[i];
  if (v.present && t < v.time_ms)
    return;  // older than the latest: history only
  if (v.source_device != source_device)
    v.source_device.assign(source_device);
  if (quality(m, value, t, v, out))
    return;
  v.value = value;
  v.time_ms = t;
  v.present = true;
  newest_ms_ = std::max(newest_ms_, t);

  // Threshold: per-patient limits or the population defaults.
  const threshold_limits* limits = settings_.limits[i] ? &*settings_.limits[i] : nullptr;
  std::optional<threshold_limits> defaults;
  if (!limits && (defaults = default_limits(m)))
    limits = &*defaults;
  if (limits) {
    auto& c = threshold_[i];
    auto target = limits->level_of(value);
    if (target < c.level())  // stay while within the hysteresis band
      target = std::max(target, std::min(c.level(), limits->level_of(value, limits->hysteresis)));
    finding f;
    f.kind = alert_kind::threshold;
    f.subject = m;
    f.value = value;
    f.device = v.source_device;
    evaluate(c, target, t, threshold_timing, f, out);
  }

  // Personal baseline: judged against what was learnt before this reading.
  if (auto floor = baseline_sd_floor(m); floor > 0) {
    auto& b = baselines_[i];
    auto& c = baseline_condition_[i];
    auto target = priority::none;
    double z = 0;
    if (b.warmed_up(t, baseline_defaults)) {
      z = b.z(value, floor);
      auto limit = c.level() == priority::none ? settings_.baseline_k : settings_.baseline_k - 1;
      if (std::abs(z) > limit)
        target = priority::low;
    }
    condition_timing timing{{0, settings_.baseline_min_duration_ms, 0, 0},
                            settings_.baseline_min_duration_ms};
    finding f;
    f.kind = alert_kind::baseline_anomaly;
    f.subject = m;
    f.value = value;
    f.detail = z;
    f.device = v.source_device;
    evaluate(c, target, t, timing, f, out);
    b.update(value, t, target != priority::none, baseline_defaults);
  }

  // Trend forecasts of the watched thresholds.
  bool watched = false;
  for (auto& ft : forecast_targets)
    watched = watched || ft.subject == m;
  if (watched) {
    auto& fc = forecasts_[i];
    fc.update(value, t, trend_defaults);
    auto horizon = m == metric::glucose ? settings_.glucose_forecast_horizon_ms
                                        : settings_.forecast_horizon_ms;
    for (uint8_t k = 0; k < forecast_targets.size(); ++k) {
      auto& ft = forecast_targets[k];
      if (ft.subject != m)
        continue;
      auto ttc = fc.time_to_cross(ft.threshold, ft.below, horizon, t, trend_defaults);
      finding f;
      f.kind = alert_kind::trend_forecast;
      f.subject = m;
      f.value = fc.level();
      f.detail = fc.slope_per_min();
      f.predicted_ms = ttc ? t + *ttc : 0;
      f.device = v.source_device;
      f.index = k;
      evaluate(trend_condition_[k], ttc ? priority::medium : priority::none, t, trend_timing, f,
               out);
    }
  }

  if (is_news2_input(m)) {
    rescore();
    record_news2(t);
    auto target = news2_priority(news2_.band);
    auto current = news2_condition_.level();
    if (target < current) {
      // One point of hysteresis: leaving >= 7 needs <= 5, leaving >= 5 needs <= 3.
      bool any_three = std::any_of(news2_.parts.begin(), news2_.parts.end(),
                                   [](const news2_part& p) { return p.score == 3; });
      auto with_margin = news2_priority(band_of(static_cast<uint8_t>(news2_.total + 1), any_three));
      target = std::max(target, std::min(current, with_margin));
    }
    finding f;
    f.kind = alert_kind::news2;
    f.value = news2_.total;
    evaluate(news2_condition_, target, t, news2_timing, f, out);
  }
}

// ---- persistence ------------------------------------------------------------

namespace {

void put_condition(state_writer& w, const alert_condition& c) {
  auto& s = c.save();
  w.put(static_cast<uint8_t>(s.active));
  for (auto v : s.at_least_since)
    w.put(v);
  w.put(s.easing_since);
}

void get_condition(state_reader& r, alert_condition& c) {
  alert_condition::state s;
  s.active = static_cast<priority>(std::min<uint8_t>(r.get<uint8_t>(), 3));
  for (auto& v : s.at_least_since)
    v = r.get<int64_t>();
  s.easing_since = r.get<int64_t>();
  c.restore(s);
}

}  // namespace

std::string patient_model::encode() const {
  state_writer w;
  w.put(state_version);
  w.put(newest_ms_);
  for (uint8_t n = 1; n <= metric_count; ++n) {
    auto& v = vitals_[n];
    w.put(static_cast<uint8_t>(v.present));
    w.put(v.value);
    w.put(v.time_ms);
    w.put_string(v.source_device);
    put_condition(w, threshold_[n]);
    put_condition(w, baseline_condition_[n]);
    put_condition(w, quality_condition_[n]);
    auto& b = baselines_[n].save();
    w.put(b.mean);
    w.put(b.var);
    w.put(b.first_ms);
    w.put(b.last_ms);
    w.put(b.n);
    auto& f = forecasts_[n].save();
    w.put(f.level);
    w.put(f.trend);
    w.put(f.first_ms);
    w.put(f.last_ms);
    w.put(f.n);
    auto& fz = frozen_[n];
    w.put(fz.value);
    w.put(fz.since_ms);
    w.put(fz.samples);
  }
  put_condition(w, news2_condition_);
  for (auto& c : trend_condition_)
    put_condition(w, c);
  auto history = news2_history();
  w.put(static_cast<uint8_t>(history.size()));
  for (auto& p : history) {
    w.put(p.time_ms);
    w.put(p.total);
    w.put(static_cast<uint8_t>(p.complete));
  }
  return w.take();
}

bool patient_model::decode(std::string_view bytes) {
  state_reader r{bytes};
  if (r.get<uint8_t>() != state_version)
    return false;
  patient_model m{news2_settings_};
  m.settings_ = settings_;
  m.newest_ms_ = r.get<int64_t>();
  for (uint8_t n = 1; n <= metric_count; ++n) {
    auto& v = m.vitals_[n];
    v.present = r.get<uint8_t>() != 0;
    v.value = r.get<double>();
    v.time_ms = r.get<int64_t>();
    v.source_device = r.get_string();
    get_condition(r, m.threshold_[n]);
    get_condition(r, m.baseline_condition_[n]);
    get_condition(r, m.quality_condition_[n]);
    ewma_baseline::state b;
    b.mean = r.get<double>();
    b.var = r.get<double>();
    b.first_ms = r.get<int64_t>();
    b.last_ms = r.get<int64_t>();
    b.n = r.get<uint32_t>();
    m.baselines_[n].restore(b);
    holt_forecaster::state f;
    f.level = r.get<double>();
    f.trend = r.get<double>();
    f.first_ms = r.get<int64_t>();
    f.last_ms = r.get<int64_t>();
    f.n = r.get<uint32_t>();
    m.forecasts_[n].restore(f);
    auto& fz = m.frozen_[n];
    fz.value = r.get<double>();
    fz.since_ms = r.get<int64_t>();
    fz.samples = r.get<uint32_t>();
  }
  get_condition(r, m.news2_condition_);
  for (auto& c : m.trend_condition_)
    get_condition(r, c);
  auto points = r.get<uint8_t>();
  if (points > m.news2_ring_.size())
    return false;
  for (uint8_t k = 0; k < points; ++k) {
    news2_point p;
    p.time_ms = r.get<int64_t>();
    p.total = r.get<uint8_t>();
    p.complete = r.get<uint8_t>() != 0;
    m.news2_ring_[k] = p;
  }
  m.news2_ring_size_ = points;
  m.news2_ring_head_ = static_cast<uint8_t>(points % m.news2_ring_.size());
  if (!r.ok() || !r.done())
    return false;
  m.rescore();
  *this = std::move(m);
  return true;
}

}  // namespace healthtwin::models
