#include "actors/models/patient_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace healthtwin::models {

namespace {

// Condition delays, in data time and in samples. Documented in docs/alerts.md.
constexpr condition_timing threshold_timing{{0, 30'000, 15'000, 5'000}, 30'000, {0, 3, 2, 2}};
constexpr condition_timing news2_timing{{0, 30'000, 30'000, 30'000}, 60'000, {0, 2, 2, 2}};
constexpr condition_timing trend_timing{{0, 60'000, 60'000, 60'000}, 120'000, {0, 3, 3, 3}};
constexpr condition_timing news2_rise_timing{{0, 300'000, 300'000, 300'000}, 600'000, {0, 3, 3, 3}};
constexpr condition_timing probe_off_timing{{0, 15'000, 15'000, 15'000}, 15'000, {0, 2, 2, 2}};
constexpr condition_timing frozen_timing{{0, 0, 0, 0}, 30'000, {0, 0, 0, 0}};
constexpr condition_timing no_signal_timing{{0, 30'000, 30'000, 30'000}, 15'000, {0, 2, 2, 2}};
// A low impedance respiration rate that nothing else bears out (SpO2 fine,
// the patient alert): most such spells are the belt or the leads, not the
// breathing, so it must last this long before it alarms.
constexpr int64_t uncorroborated_rr_low_ms = 15 * 60'000;

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

// A lost signal that leaves the patient unmonitored for a continuously
// watched vital is MEDIUM, as a probe off is; any other LOW.
priority lost_signal_priority(metric m) {
  switch (m) {
    case metric::heart_rate:
    case metric::respiration_rate:
    case metric::spo2: return priority::medium;
    default: return priority::low;
  }
}

// `timing` with every onset at least `ms` (the samples kept).
condition_timing slowed(condition_timing timing, int64_t ms) {
  for (int p = 1; p <= 3; ++p)
    timing.onset_ms[p] = std::max(timing.onset_ms[p], ms);
  return timing;
}

// The population limits, per metric.
const std::array<std::optional<threshold_limits>, metric_count + 1>& population_limits() {
  static const auto defaults = [] {
    std::array<std::optional<threshold_limits>, metric_count + 1> d{};
    for (uint8_t n = 1; n <= metric_count; ++n)
      d[n] = default_limits(static_cast<metric>(n));
    return d;
  }();
  return defaults;
}

}  // namespace

patient_model::metric_models& patient_model::at(metric m) {
  auto& p = metrics_.slots[static_cast<size_t>(m)];
  if (!p)
    p = std::make_unique<metric_models>();
  return *p;
}

const patient_model::metric_models patient_model::no_metric{};

const std::shared_ptr<const patient_settings>& patient_model::defaults() {
  static const auto none = std::make_shared<const patient_settings>();
  return none;
}

void patient_model::configure(const patient_settings& s) {
  configure(s == *defaults() ? defaults() : std::make_shared<const patient_settings>(s));
}

void patient_model::configure(std::shared_ptr<const patient_settings> s) {
  settings_ = std::move(s);
  rescore();
}

void patient_model::rescore() noexcept {
  news2_inputs in;
  auto take = [&](metric m) -> std::optional<observation> {
    auto& v = latest(m);
    if (!v.present)
      return std::nullopt;
    return observation{observed(m), v.time_ms};
  };
  in.respiration_rate = take(metric::respiration_rate);
  in.spo2 = take(metric::spo2);
  in.oxygen_flow = take(metric::oxygen_flow);
  in.systolic_bp = take(metric::systolic_bp);
  in.pulse = take(metric::heart_rate);
  in.consciousness = take(metric::consciousness);
  in.temperature = take(metric::temperature);
  in.spo2_scale2 = settings_->spo2_scale2;
  news2_ = score_news2(in, newest_ms_, news2_settings_);
  news2_fresh_until_ = std::numeric_limits<int64_t>::max();
  for (auto& p : news2_.parts) {
    if (p.missing || p.stale)
      continue;
    bool charted = p.parameter == news2_parameter::air_or_oxygen ||
                   p.parameter == news2_parameter::consciousness;
    bool intermittent = p.parameter == news2_parameter::systolic_bp ||
                        p.parameter == news2_parameter::temperature;
    auto age = charted        ? news2_settings_.observation_max_age_ms
               : intermittent ? news2_settings_.intermittent_max_age_ms
                              : news2_settings_.vital_max_age_ms;
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
      part.score = settings_->spo2_scale2 ? score_spo2_scale2(r, on_oxygen) : score_spo2_scale1(r);
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

// A metric's conditions exist once it had a reading: before, they read as
// none (`make`: made now).
alert_condition* patient_model::condition(alert_kind k, metric m, uint8_t index, bool make) {
  auto i = static_cast<size_t>(m);
  if (i > metric_count)
    return nullptr;
  switch (k) {
    case alert_kind::news2: return index == 1 ? &news2_rising_ : &news2_condition_;
    case alert_kind::trend_forecast:
      return index < trend_condition_.size() ? &trend_condition_[index] : nullptr;
    case alert_kind::threshold:
    case alert_kind::baseline_anomaly:
    case alert_kind::signal_quality: break;
    default: return nullptr;
  }
  if (i == 0 || (!make && !find(m)))
    return nullptr;
  auto& mm = at(m);
  switch (k) {
    case alert_kind::threshold: return index == 1 ? &mm.threshold_low : &mm.threshold_high;
    case alert_kind::baseline_anomaly: return &mm.baseline_condition;
    default: return index == 1 ? &mm.no_signal_condition : &mm.quality_condition;
  }
}

priority patient_model::level(alert_kind k, metric m, uint8_t index) const noexcept {
  auto* c = const_cast<patient_model*>(this)->condition(k, m, index, false);
  return c ? c->level() : priority::none;
}

void patient_model::reset(alert_kind k, metric m, uint8_t index, priority level) {
  if (auto* c = condition(k, m, index, true))
    c->reset(level);
}

// A low respiration rate is borne out by a low or falling SpO2 (against
// this patient's own) or by a patient who is not alert.
bool patient_model::rr_low_corroborated(int64_t t) const noexcept {
  auto& spo2 = latest(metric::spo2);
  if (spo2.present && t - spo2.time_ms <= 5 * 60'000) {
    if (spo2.value <= 92)
      return true;
    auto& b = baseline(metric::spo2);
    if (b.warmed_up() && spo2.value <= b.mean() - 3)
      return true;
  }
  auto& acvpu = latest(metric::consciousness);
  return acvpu.present && acvpu.value >= 1;
}

double patient_model::observed(metric m) const noexcept {
  auto& mm = get(m);
  return mm.smp.observed_ms != 0 ? mm.smp.observed : mm.vital.value;
}

// A continuous signal's level over observation_ms; a measurement that
// stands for itself (intermittent, charted) is observed as it is.
double patient_model::observe(metric m, sampling& smp, double value, int64_t t) noexcept {
  bool smoothed = m == metric::heart_rate || m == metric::respiration_rate || m == metric::spo2 ||
                  m == metric::systolic_bp || m == metric::temperature;
  if (!smoothed || intermittent(m, smp) || smp.observed_ms == 0 || t - smp.observed_ms >= observation_ms) {
    smp.observed = value;
  } else {
    auto weight = static_cast<double>(std::max<int64_t>(t - smp.observed_ms, 1)) / observation_ms;
    smp.observed += (value - smp.observed) * weight;
  }
  smp.observed_ms = t;
  return smp.observed;
}

bool patient_model::intermittent(metric m) const noexcept {
  return intermittent(m, get(m).smp);
}

inline bool patient_model::intermittent(metric m, const sampling& smp) noexcept {
  auto& x = smp.intervals_ms;  // newest first, 0: none
  if (x[1] == 0)  // fewer than two intervals seen: what the metric usually is
    return m == metric::systolic_bp || m == metric::diastolic_bp || m == metric::mean_arterial_pressure ||
           m == metric::temperature || m == metric::glucose;
  float median = x[2] == 0 ? std::min(x[0], x[1])
                           : std::max(std::min(x[0], x[1]), std::min(std::max(x[0], x[1]), x[2]));
  return median > static_cast<float>(intermittent_after_ms);
}

// A condition's step; `describe` makes the finding, called only when the
// level changed (rarely: most steps change nothing, and most conditions are
// idle).
template <class Describe>
void patient_model::evaluate(alert_condition& c, priority target, int64_t t,
                             const condition_timing& timing, Describe&& describe,
                             std::vector<finding>& out) {
  if (auto change = c.evaluate(target, t, timing)) {
    auto& x = out.emplace_back(describe());
    x.level = change->level;
    x.previous = change->previous;
    x.what = change_of(change->level, change->previous);
  }
}

// Probe-off and frozen signals: technical conditions. Returns true when the
// reading is an artefact to keep out of the clinical models.
bool patient_model::quality(metric m, metric_models& mm, double v, int64_t t, std::vector<finding>& out) {
  auto describe = [&] {
    return finding{.kind = alert_kind::signal_quality, .subject = m, .value = v,
                   .device = mm.vital.source_device};
  };
  if (m == metric::spo2) {
    bool off = v < probe_off_spo2;
    evaluate(mm.quality_condition, off ? priority::medium : priority::none, t, probe_off_timing, describe,
             out);
    return off;
  }
  if (has_frozen_check(m)) {
    auto& fz = mm.frozen;
    if (fz.since_ms < 0 || v != fz.value) {
      fz = frozen_tracker{v, t, 1};
    } else {
      ++fz.samples;
    }
    bool frozen = fz.samples >= frozen_min_samples && t - fz.since_ms >= frozen_after_ms;
    evaluate(mm.quality_condition, frozen ? priority::low : priority::none, t, frozen_timing, describe, out);
  }
  return false;
}

// A signal that was there and is gone (leads off, probe off, line out) is a
// technical alarm; a channel never connected is not (no arterial line sends
// 0 all day). `missing`: this reading says no signal; else a valid one.
void patient_model::lost_signal(metric m, metric_models& mm, bool missing, int64_t t, std::string_view device,
                                std::vector<finding>& out) {
  auto& c = mm.no_signal_condition;
  auto target = priority::none;
  // A cuff or a thermometer has no signal to lose between measurements
  // (and an arterial channel without a line sends 0 beside the cuff).
  if (missing && !intermittent(m, mm.smp)) {
    auto& smp = mm.smp;
    bool was_there = smp.seen && t - smp.last_valid_ms <= signal_lost_within_ms;
    if (was_there || c.level() != priority::none)
      target = lost_signal_priority(m);
  }
  evaluate(c, target, t, no_signal_timing, [&] {
    return finding{.kind = alert_kind::signal_quality, .subject = m, .device = device, .index = 1};
  }, out);
}

// High and low limits are separate conditions: a falling value never keeps
// a "high" alert open, and each alert's text follows its own direction.
void patient_model::threshold(metric m, metric_models& mm, double value, int64_t t,
                              std::vector<finding>& out) {
  auto i = static_cast<size_t>(m);
  auto& defaults = population_limits();
  const threshold_limits* limits = settings_->limits[i] ? &*settings_->limits[i]
                                   : defaults[i]        ? &*defaults[i]
                                                        : nullptr;
  if (!limits)
    return;
  auto per_sample = intermittent(m, mm.smp) ? per_measurement : threshold_timing;
  for (uint8_t index : {uint8_t{0}, uint8_t{1}}) {
    bool low = index == 1;
    auto timing = per_sample;
    if (low && m == metric::respiration_rate && !rr_low_corroborated(t))
      timing = slowed(timing, uncorroborated_rr_low_ms);
    auto& c = low ? mm.threshold_low : mm.threshold_high;
    auto side = [&](double margin) {
      return low ? limits->low_level_of(value, margin) : limits->high_level_of(value, margin);
    };
    auto target = side(0);
    if (target < c.level())  // stay while within the hysteresis band
      target = std::max(target, std::min(c.level(), side(limits->hysteresis)));
    evaluate(c, target, t, timing, [&] {
      return finding{.kind = alert_kind::threshold, .subject = m, .value = value,
                     .device = mm.vital.source_device, .index = index};
    }, out);
  }
}

// One reading's own models; true when it changed a NEWS2 input.
bool patient_model::apply_reading(const frame_reading& r, int64_t t, std::vector<finding>& out) {
  auto m = r.m;
  auto i = static_cast<size_t>(m);
  if (i == 0 || i > metric_count)
    return false;
  if (auto& latest = get(m).vital; latest.present && t < latest.time_ms)
    return false;  // older than the latest: history only
  auto q = effective_quality(m, r.value, r.quality);
  if (!charted(q)) {
    if (signal_missing(q)) {
      auto& mm = at(m);
      mm.smp.missing_since_valid = true;
      lost_signal(m, mm, true, t, r.device, out);
    }
    return false;
  }
  auto& mm = at(m);
  auto& v = mm.vital;
  lost_signal(m, mm, false, t, r.device, out);
  auto& smp = mm.smp;
  bool amid_no_signal = smp.missing_since_valid;
  smp.missing_since_valid = false;
  if (smp.seen && t > smp.last_valid_ms) {
    smp.intervals_ms[2] = smp.intervals_ms[1];
    smp.intervals_ms[1] = smp.intervals_ms[0];
    smp.intervals_ms[0] = static_cast<float>(t - smp.last_valid_ms);
  }
  smp.last_valid_ms = t;
  smp.seen = true;
  if (v.source_device != r.device)
    v.source_device.assign(r.device);
  if (quality(m, mm, r.value, t, out))
    return false;
  // An intermittently measured metric (spot checks) has no signal to judge
  // a jump by: each measurement stands for itself.
  auto verdict = intermittent(m, smp) ? jump_filter::verdict::pass
                                 : mm.jump.admit(m, r.value, t, amid_no_signal);
  switch (verdict) {
    case jump_filter::verdict::held:
      return false;
    case jump_filter::verdict::confirmed:
      // A step is not a trend: the forecast learns afresh from the new level.
      mm.forecast = holt_forecaster{};
      // The held readings were real: they count, so the alarm conditions'
      // onsets run from the new level's start.
      for (auto& h : mm.jump.held())
        if (h.time_ms > v.time_ms || !v.present)
          apply_valid(m, mm, h.value, h.time_ms, out);
      break;
    case jump_filter::verdict::pass:
      break;
  }
  return apply_valid(m, mm, r.value, t, out);
}

// A valid reading that passed the filters: the metric's models.
bool patient_model::apply_valid(metric m, metric_models& mm, double value, int64_t t, std::vector<finding>& out) {
  auto& v = mm.vital;
  v.value = value;
  v.time_ms = t;
  v.present = true;
  newest_ms_ = std::max(newest_ms_, t);

  threshold(m, mm, value, t, out);

  // Personal baseline: judged against what was learnt before this reading.
  if (auto floor = baseline_sd_floor(m); floor > 0) {
    auto& b = mm.baseline;
    auto& c = mm.baseline_condition;
    auto target = priority::none;
    double z = 0;
    if (b.warmed_up()) {
      z = b.z(value, floor);
      auto limit = c.level() == priority::none ? settings_->baseline_k : settings_->baseline_k - 1;
      if (std::abs(z) > limit)
        target = priority::low;
    }
    condition_timing timing{{0, settings_->baseline_min_duration_ms, 0, 0},
                            settings_->baseline_min_duration_ms,
                            {0, 3, 0, 0}};
    if (m == metric::respiration_rate && z < 0 && !rr_low_corroborated(t))
      timing = slowed(timing, uncorroborated_rr_low_ms);
    evaluate(c, target, t, timing, [&] {
      return finding{.kind = alert_kind::baseline_anomaly, .subject = m, .value = value, .detail = z,
                     .device = v.source_device};
    }, out);
    b.update(value, t, target != priority::none, baseline_defaults);
  }

  // Trend forecasts of the watched thresholds.
  bool watched = false;
  for (auto& ft : forecast_targets)
    watched = watched || ft.subject == m;
  if (watched) {
    auto& fc = mm.forecast;
    fc.update(value, t, trend_defaults);
    auto horizon = m == metric::glucose ? settings_->glucose_forecast_horizon_ms
                                        : settings_->forecast_horizon_ms;
    for (uint8_t k = 0; k < forecast_targets.size(); ++k) {
      auto& ft = forecast_targets[k];
      if (ft.subject != m)
        continue;
      // Slower than the target's drift or too far from its threshold: no
      // forecast (checked first, it is cheaper).
      std::optional<int64_t> ttc;
      if (!(std::abs(fc.slope_per_min()) < ft.min_slope_per_min) &&
          !(std::abs(fc.level() - ft.threshold) > ft.approach))
        ttc = fc.time_to_cross(ft.threshold, ft.below, horizon, t, trend_defaults);
      evaluate(trend_condition_[k], ttc ? priority::medium : priority::none, t, trend_timing, [&] {
        return finding{.kind = alert_kind::trend_forecast, .subject = m, .value = fc.level(),
                       .detail = fc.slope_per_min(), .predicted_ms = ttc ? t + *ttc : 0,
                       .device = v.source_device, .index = k};
      }, out);
    }
  }

  if (!is_news2_input(m))
    return false;
  if (!news2_update(m, observe(m, mm.smp, value, t), t))
    rescore();
  return true;
}

// NEWS2 once per frame, after all of its readings.
void patient_model::evaluate_news2(int64_t t, std::vector<finding>& out) {
  news2_history_.record(t, news2_.total, news2_.complete);
  auto target = news2_priority(news2_.band);
  auto current = news2_condition_.level();
  if (target < current) {
    // One point of hysteresis: leaving >= 7 needs <= 5, leaving >= 5 needs <= 3.
    bool any_three = std::any_of(news2_.parts.begin(), news2_.parts.end(),
                                 [](const news2_part& p) { return p.score == 3; });
    auto with_margin = news2_priority(band_of(static_cast<uint8_t>(news2_.total + 1), any_three));
    target = std::max(target, std::min(current, with_margin));
  }
  // A band reached only through a low respiration rate that nothing bears
  // out waits as long as a low-RR alarm does.
  auto timing = news2_timing;
  auto& rr = news2_.part(news2_parameter::respiration_rate);
  bool rr_low_alone = rr.score > 0 && rr.value <= 11 && !rr_low_corroborated(t);
  if (rr_low_alone) {
    bool other_three = false;
    for (auto& p : news2_.parts)
      other_three = other_three || (p.score == 3 && p.parameter != news2_parameter::respiration_rate);
    auto without = news2_priority(band_of(static_cast<uint8_t>(news2_.total - rr.score), other_three));
    if (without < target)
      timing = slowed(timing, uncorroborated_rr_low_ms);
  }
  evaluate(news2_condition_, target, t, timing, [&] {
    return finding{.kind = alert_kind::news2, .value = static_cast<double>(news2_.total)};
  }, out);

  // NEWS2 rising: a change over an hour of data, even below the medium band.
  auto change = news2_history_.change(t, news2_.total, news2_rise_window_ms);
  auto rising = change && *change >= (news2_rising_.level() == priority::none ? news2_rise_points
                                                                              : news2_rise_points - 1);
  evaluate(news2_rising_, rising ? priority::low : priority::none, t,
           rr_low_alone ? slowed(news2_rise_timing, uncorroborated_rr_low_ms) : news2_rise_timing,
           [&] {
             return finding{.kind = alert_kind::news2, .value = static_cast<double>(news2_.total),
                            .detail = change ? static_cast<double>(*change) : 0, .index = 1};
           }, out);
}

void patient_model::apply_frame(int64_t t, const std::vector<frame_reading>& frame,
                                std::vector<finding>& out) {
  // What bears out a low respiration rate (SpO2, consciousness) and the
  // oxygen SpO2 is scored with are taken first, so a frame's readings are
  // judged alike in any order.
  auto rank = [](metric m) {
    switch (m) {
      case metric::consciousness: return 0;
      case metric::oxygen_flow: return 1;
      case metric::spo2: return 2;
      default: return 3 + static_cast<int>(m);
    }
  };
  thread_local std::vector<const frame_reading*> order;
  order.clear();
  for (auto& r : frame)
    order.push_back(&r);
  // Stable insertion sort: a frame holds a few readings, and needs no buffer.
  for (size_t i = 1; i < order.size(); ++i)
    for (auto j = i; j > 0 && rank(order[j]->m) < rank(order[j - 1]->m); --j)
      std::swap(order[j], order[j - 1]);
  bool news2_input = false;
  for (auto* r : order)
    news2_input = apply_reading(*r, t, out) || news2_input;
  if (news2_input)
    evaluate_news2(t, out);
}

void patient_model::apply(metric m, double value, int64_t t, std::string_view source_device,
                          std::vector<finding>& out, reading_quality quality) {
  apply_frame(t, {frame_reading{m, value, quality, source_device}}, out);
}

}  // namespace healthtwin::models
