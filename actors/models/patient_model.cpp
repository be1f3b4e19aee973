#include "actors/models/patient_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "actors/models/state_codec.hpp"

namespace healthtwin::models {

namespace {

constexpr uint8_t state_version = 2;

// Condition delays (data time). Documented in docs/alerts.md.
constexpr condition_timing threshold_timing{{0, 30'000, 15'000, 5'000}, 30'000};
constexpr condition_timing news2_timing{{0, 30'000, 30'000, 30'000}, 60'000};
constexpr condition_timing trend_timing{{0, 60'000, 60'000, 60'000}, 120'000};
constexpr condition_timing news2_rise_timing{{0, 300'000, 300'000, 300'000}, 600'000};
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

double jump_limit(metric m) noexcept {
  switch (m) {
    case metric::heart_rate: return 20;
    case metric::respiration_rate: return 5;
    case metric::spo2: return 4;
    default: return 0;
  }
}

// Motion and spikes move a continuous signal further in one step than
// physiology does: such a reading is held back (from every model) until the
// new level has lasted jump_confirm_ms; a return to the old level ends the
// jump as an artefact. Gradual change passes, as the reference follows it.
bool patient_model::held_back(metric m, double v, int64_t t) noexcept {
  auto limit = jump_limit(m);
  if (limit <= 0)
    return false;
  auto& j = jumps_[static_cast<size_t>(m)];
  if (j.reference_ms < 0 || t - j.reference_ms > 120'000) {  // first reading, or after a gap
    j = jump_tracker{v, t, -1};
    return false;
  }
  if (std::abs(v - j.reference) > limit) {
    if (j.jump_since < 0)
      j.jump_since = t;
    if (t - j.jump_since < jump_confirm_ms)
      return true;
    j = jump_tracker{v, t, -1};  // the new level is real
    return false;
  }
  j.jump_since = -1;
  auto dt = static_cast<double>(std::max<int64_t>(t - j.reference_ms, 1));
  j.reference += (v - j.reference) * dt / (30'000.0 + dt);
  j.reference_ms = t;
  return false;
}

double baseline_sd_floor(metric m) noexcept {
  switch (m) {
    case metric::heart_rate: return 3;
    case metric::respiration_rate: return 1.0;
    case metric::spo2: return 0.7;
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
  news2_fresh_until_ = std::numeric_limits<int64_t>::max();
  for (auto& p : news2_.parts) {
    if (p.missing || p.stale)
      continue;
    bool charted = p.parameter == news2_parameter::air_or_oxygen ||
                   p.parameter == news2_parameter::consciousness;
    auto age = charted ? news2_settings_.observation_max_age_ms : news2_settings_.vital_max_age_ms;
    news2_fresh_until_ = std::min(news2_fresh_until_, p.time_ms + age);
  }
}

// The common case on a continuous signal: the input was already present and
// no input has turned stale since the last full score, so only this part's
// score changes (if its rounded value does). Gives the same result as a
// full rescore (the unit tests compare both) at a fraction of the cost.
bool patient_model::news2_update(metric m, double v, int64_t t) noexcept {
  news2_parameter p{};
  switch (m) {
    case metric::respiration_rate: p = news2_parameter::respiration_rate; break;
    case metric::spo2: p = news2_parameter::spo2; break;
    case metric::systolic_bp: p = news2_parameter::systolic_bp; break;
    case metric::heart_rate: p = news2_parameter::pulse; break;
    case metric::temperature: p = news2_parameter::temperature; break;
    default: return false;  // charted observations: always rescored
  }
  auto& part = news2_.parts[static_cast<size_t>(p) - 1];
  if (part.missing || part.stale || newest_ms_ >= news2_fresh_until_)
    return false;
  part.time_ms = t;
  news2_.time_ms = newest_ms_;
  auto r = m == metric::temperature ? round_tenth(v) : round_whole(v);
  if (r == part.value)
    return true;
  part.value = r;
  switch (p) {
    case news2_parameter::respiration_rate: part.score = score_respiration_rate(r); break;
    case news2_parameter::spo2: {
      auto& o2 = news2_.part(news2_parameter::air_or_oxygen);
      bool on_oxygen = !o2.missing && !o2.stale && o2.value > 0;
      part.score = settings_.spo2_scale2 ? score_spo2_scale2(r, on_oxygen) : score_spo2_scale1(r);
      break;
    }
    case news2_parameter::systolic_bp: part.score = score_systolic_bp(r); break;
    case news2_parameter::pulse: part.score = score_pulse(r); break;
    default: part.score = score_temperature(r); break;
  }
  unsigned total = 0;
  bool any_three = false;
  for (auto& x : news2_.parts) {
    total += x.score;
    any_three = any_three || x.score == 3;
  }
  news2_.total = static_cast<uint8_t>(total);
  news2_.band = band_of(news2_.total, any_three);
  return true;
}

void patient_model::record_news2(int64_t t) {
  auto bucket = t - t % news2_bucket_ms;
  auto last = news2_ring_size_ == 0
                  ? nullptr
                  : &news2_ring_[(news2_ring_head_ + news2_ring_.size() - 1) % news2_ring_.size()];
  if (last && last->time_ms == bucket) {
    if (news2_.total < last->total)
      *last = news2_point{bucket, news2_.total, news2_.complete};
    return;
  }
  if (last && last->time_ms > bucket)
    return;  // out of order: history only
  news2_ring_[news2_ring_head_] = news2_point{bucket, news2_.total, news2_.complete};
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
  // The newest bucket at or before `at` (buckets are in time order).
  auto at = newest_ms_ - window_ms;
  auto n = news2_ring_.size();
  for (size_t i = 1; i <= news2_ring_size_; ++i) {
    auto& p = news2_ring_[(news2_ring_head_ + n - i) % n];
    if (p.time_ms <= at)
      return static_cast<int>(news2_.total) - static_cast<int>(p.total);
  }
  return std::nullopt;
}

alert_condition* patient_model::condition(alert_kind k, metric m, uint8_t index) noexcept {
  auto i = static_cast<size_t>(m);
  switch (k) {
    case alert_kind::threshold: return i < threshold_.size() ? &threshold_[i] : nullptr;
    case alert_kind::news2: return index == 1 ? &news2_rising_ : &news2_condition_;
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
  if (quality(m, value, t, v, out) || held_back(m, value, t))
    return;
  v.value = value;
  v.time_ms = t;
  v.present = true;
  newest_ms_ = std::max(newest_ms_, t);

  // Threshold: per-patient limits or the population defaults.
  static const auto defaults = [] {
    std::array<std::optional<threshold_limits>, metric_count + 1> d{};
    for (uint8_t n = 1; n <= metric_count; ++n)
      d[n] = default_limits(static_cast<metric>(n));
    return d;
  }();
  const threshold_limits* limits = settings_.limits[i] ? &*settings_.limits[i]
                                   : defaults[i]        ? &*defaults[i]
                                                        : nullptr;
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
      if (std::abs(fc.slope_per_min()) < ft.min_slope_per_min)
        ttc.reset();
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
    if (!news2_update(m, value, t))
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

    // NEWS2 rising: a change over time, even below the medium band.
    auto change = news2_change(news2_rise_window_ms);
    auto rising = change && *change >= (news2_rising_.level() == priority::none
                                            ? news2_rise_points
                                            : news2_rise_points - 1);
    f.index = 1;
    f.detail = change ? *change : 0;
    evaluate(news2_rising_, rising ? priority::low : priority::none, t, news2_rise_timing, f, out);
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
    auto& j = jumps_[n];
    w.put(j.reference);
    w.put(j.reference_ms);
    w.put(j.jump_since);
  }
  put_condition(w, news2_condition_);
  put_condition(w, news2_rising_);
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
    auto& j = m.jumps_[n];
    j.reference = r.get<double>();
    j.reference_ms = r.get<int64_t>();
    j.jump_since = r.get<int64_t>();
  }
  get_condition(r, m.news2_condition_);
  get_condition(r, m.news2_rising_);
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
