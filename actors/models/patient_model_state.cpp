// The patient model's state in twin snapshots: version 5 (only the metrics
// that hold state, idle alarm conditions in one byte); version 4 (every
// metric written), version 3 (before NEWS2 observations) and version 2
// (before frames, quality and two-sided thresholds) read and converted.
#include <algorithm>

#include "actors/models/patient_model.hpp"
#include "actors/models/state_codec.hpp"

namespace healthtwin::models {

namespace {

constexpr uint8_t state_version = 5;
constexpr uint8_t oldest_version = 2;
constexpr unsigned metrics_before_version_5 = 12;  // versions 2-4 wrote each of them
static_assert(metric_count >= metrics_before_version_5 && metric_count <= 15, "the mask is 16 bits");

// Version 5 marks a condition in its initial state (most of them, most of
// the time) with one byte.
enum class condition_tag : uint8_t { initial = 0, kept = 1 };

void put_condition(state_writer& w, const alert_condition& c) {
  auto& s = c.save();
  if (s == alert_condition::state{}) {
    w.put(condition_tag::initial);
    return;
  }
  w.put(condition_tag::kept);
  w.put(static_cast<uint8_t>(s.active));
  for (auto v : s.at_least_since)
    w.put(v);
  w.put(s.easing_since);
  for (auto v : s.samples_at_least)
    w.put(v);
}

void get_condition(state_reader& r, alert_condition& c, uint8_t version) {
  alert_condition::state s;
  if (version >= 5) {
    auto tag = r.get<condition_tag>();
    if (tag == condition_tag::initial) {
      c.restore(s);
      return;
    }
    if (tag != condition_tag::kept)
      r.fail();
  }
  s.active = static_cast<priority>(std::min<uint8_t>(r.get<uint8_t>(), 3));
  for (auto& v : s.at_least_since)
    v = r.get_time();
  s.easing_since = r.get_time();
  if (version >= 3)
    for (auto& v : s.samples_at_least)
      v = r.get<uint16_t>();
  else  // version 2 counted no samples: take the onset as met
    for (int p = 1; p <= 3; ++p)
      s.samples_at_least[p] = s.at_least_since[p] >= 0 ? UINT16_MAX : 0;
  c.restore(s);
}

}  // namespace

/// Reads and writes patient_model's private state: the metrics that hold
/// state (a bit each in a mask, then theirs), then the model's own. Before
/// version 5 every metric was written (an absent one as its default state);
/// a metric read back from those as its default state is not made.
struct patient_model_codec {
  using metric_models = patient_model::metric_models;

  static void put(state_writer& w, const patient_model& m) {
    w.put(state_version);
    w.put(m.newest_ms_);
    uint16_t held = 0;
    for (uint8_t n = 1; n <= metric_count; ++n)
      if (m.metrics_.slots[n])
        held |= static_cast<uint16_t>(1u << n);
    w.put(held);
    for (uint8_t n = 1; n <= metric_count; ++n)
      if (m.metrics_.slots[n])
        put_metric(w, *m.metrics_.slots[n]);
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

  static void put_metric(state_writer& w, const metric_models& mm) {
    auto& v = mm.vital;
    w.put(static_cast<uint8_t>(v.present));
    w.put(v.value);
    w.put(v.time_ms);
    w.put_string(v.source_device);
    put_condition(w, mm.threshold_high);
    put_condition(w, mm.threshold_low);
    put_condition(w, mm.baseline_condition);
    put_condition(w, mm.quality_condition);
    put_condition(w, mm.no_signal_condition);
    auto& b = mm.baseline.save();
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
    auto& f = mm.forecast.save();
    w.put(f.level);
    w.put(f.trend);
    w.put(f.first_ms);
    w.put(f.last_ms);
    w.put(f.n);
    w.put(f.residual_var);
    w.put(f.interval_ms);
    auto& fz = mm.frozen;
    w.put(fz.value);
    w.put(fz.since_ms);
    w.put(fz.samples);
    auto& j = mm.jump.save();
    w.put(j.reference);
    w.put(j.reference_ms);
    w.put(static_cast<uint8_t>(j.has_reference));
    w.put(j.candidate);
    w.put(j.candidate_since);
    w.put(j.candidate_samples);
    w.put(j.first_value);
    w.put(j.previous.value);
    w.put(j.previous.time_ms);
    auto& smp = mm.smp;
    w.put(smp.last_valid_ms);
    for (auto x : smp.intervals_ms)
      w.put(x);
    w.put(static_cast<uint8_t>(smp.seen));
    w.put(static_cast<uint8_t>(smp.missing_since_valid));
    w.put(smp.observed);
    w.put(smp.observed_ms);
  }

  // Whether `mm` is the state of a metric that never had a reading.
  static bool is_default(const metric_models& mm) {
    static const std::string none = [] {
      state_writer w;
      put_metric(w, metric_models{});
      return w.take();
    }();
    state_writer w;
    put_metric(w, mm);
    return w.take() == none;
  }

  static bool get(state_reader& r, patient_model& m) {
    auto version = r.get<uint8_t>();
    if (version < oldest_version || version > state_version)
      return false;
    m.newest_ms_ = r.get_time();
    // Version 5 lists the metrics it holds; before, every metric of the
    // time was there (12: a metric added later is not in them).
    auto metrics_up_to = [](unsigned n) { return static_cast<uint16_t>(((1u << n) - 1) << 1); };
    uint16_t known = metrics_up_to(metric_count);
    uint16_t held = version >= 5 ? r.get<uint16_t>() : metrics_up_to(metrics_before_version_5);
    if ((held & ~known) != 0)
      return false;  // a metric this binary does not know
    for (uint8_t n = 1; n <= metric_count; ++n) {
      if ((held & (1u << n)) == 0)
        continue;
      auto metric_ = static_cast<metric>(n);
      auto mm = std::make_unique<metric_models>();
      if (!get_metric(r, *mm, metric_, *m.settings_, version))
        return false;
      if (version >= 5 || !is_default(*mm))
        m.metrics_.slots[n] = std::move(mm);
    }
    get_condition(r, m.news2_condition_, version);
    get_condition(r, m.news2_rising_, version);
    for (auto& c : m.trend_condition_)
      get_condition(r, c, version);
    auto count = r.get<uint8_t>();
    std::vector<news2_point> points;
    for (uint8_t k = 0; k < count; ++k) {
      news2_point p;
      p.time_ms = r.get_time();
      p.total = r.get<uint8_t>();
      p.complete = r.get<uint8_t>() != 0;
      points.push_back(p);
    }
    return r.ok() && r.done() && m.news2_history_.restore(points);
  }

  static bool get_metric(state_reader& r, metric_models& mm, metric metric_, const patient_settings& settings,
                         uint8_t version) {
    auto& v = mm.vital;
    v.present = r.get<uint8_t>() != 0;
    v.value = r.get_finite<double>();
    v.time_ms = r.get_time();
    v.source_device = r.get_string();
    if (version >= 3) {
      get_condition(r, mm.threshold_high, version);
      get_condition(r, mm.threshold_low, version);
    } else {
      alert_condition one;
      get_condition(r, one, version);
      (low_side(settings, v, metric_) ? mm.threshold_low : mm.threshold_high) = one;
    }
    get_condition(r, mm.baseline_condition, version);
    get_condition(r, mm.quality_condition, version);
    if (version >= 3)
      get_condition(r, mm.no_signal_condition, version);
    ewma_baseline::state b;
    b.mean = r.get_finite<double>();
    b.var = r.get_finite<double>();
    b.first_ms = r.get_time();
    b.last_ms = r.get_time();
    b.n = r.get<uint32_t>();
    if (version >= 3) {
      b.started = r.get<uint8_t>() != 0;
      b.last_kept_ms = r.get_time();
      auto kept = r.get<uint8_t>();
      if (kept > ewma_baseline::warmup_kept)
        return false;
      for (uint8_t k = 0; k < kept; ++k)
        b.warmup.push_back(r.get_finite<float>());
    } else {  // warmed up as version 2 judged it (60 samples, 30 min)
      b.started = b.n >= 60 && b.last_ms - b.first_ms >= 30 * 60'000;
    }
    mm.baseline.restore(std::move(b));
    holt_forecaster::state f;
    f.level = r.get_finite<double>();
    f.trend = r.get_finite<double>();
    f.first_ms = r.get_time();
    f.last_ms = r.get_time();
    f.n = r.get<uint32_t>();
    if (version >= 3) {
      f.residual_var = r.get_finite<double>();
      f.interval_ms = r.get_finite<double>();
    }
    mm.forecast.restore(f);
    auto& fz = mm.frozen;
    fz.value = r.get_finite<double>();
    fz.since_ms = r.get_time();
    fz.samples = r.get<uint32_t>();
    jump_filter::state j;
    j.reference = r.get_finite<double>();
    j.reference_ms = r.get_time();
    auto& smp = mm.smp;
    if (version >= 3) {
      j.has_reference = r.get<uint8_t>() != 0;
      j.candidate = r.get_finite<double>();
      j.candidate_since = r.get_time();
      j.candidate_samples = r.get<uint16_t>();
      j.first_value = r.get_finite<double>();
      j.previous.value = r.get_finite<double>();
      j.previous.time_ms = r.get_time();
      smp.last_valid_ms = r.get_time();
      for (auto& x : smp.intervals_ms)
        x = r.get_finite<float>();
      smp.seen = r.get<uint8_t>() != 0;
      smp.missing_since_valid = r.get<uint8_t>() != 0;
      if (version >= 4) {  // else observed_ms 0: NEWS2 scores the latest value
        smp.observed = r.get_finite<double>();
        smp.observed_ms = r.get_time();
      }
    } else {
      j.has_reference = j.reference_ms >= 0;  // -1 was "none" in version 2
      (void)r.get_time();  // the jump's start: held readings are not kept
      smp.last_valid_ms = v.time_ms;
      smp.seen = v.present;
    }
    mm.jump.restore(j);
    return true;
  }

  // Version 2 had one threshold condition per metric: it takes the side of
  // the latest value (the alert it keeps open is about that value).
  static bool low_side(const patient_settings& settings, const latest_vital& v, metric metric_) {
    auto& custom = settings.limits[static_cast<size_t>(metric_)];
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
