#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/models/alert_condition.hpp"
#include "actors/models/alert_policy.hpp"
#include "actors/models/baseline.hpp"
#include "actors/models/metric.hpp"
#include "actors/models/news2_timeline.hpp"
#include "actors/models/news2_score.hpp"
#include "actors/models/signal_filter.hpp"
#include "actors/models/trend_forecast.hpp"

namespace healthtwin::models {

/// Per-patient clinical settings, set by clinicians through the API. Every
/// field has a safe default; validate() names the first bad field.
struct patient_settings {
  /// NEWS2 SpO2 scale 2 (hypercapnic respiratory failure, target 88-92 %).
  bool spo2_scale2 = false;
  /// Alarm limits replacing the population defaults, per metric.
  std::array<std::optional<threshold_limits>, metric_count + 1> limits{};
  /// Baseline anomaly: standard deviations from the patient's normal. Default 3
  /// (docs/model-evaluation.md).
  double baseline_k = 3.0;
  /// Baseline anomaly: how long it must last. Default 5 min.
  int64_t baseline_min_duration_ms = 5 * 60'000;
  /// Trend forecasts: how far ahead a predicted crossing alerts. Default 15 min.
  int64_t forecast_horizon_ms = 15 * 60'000;
  /// ... for glucose. Default 30 min.
  int64_t glucose_forecast_horizon_ms = 30 * 60'000;
  /// A device is offline after this long without data. Default 60 s.
  int64_t device_offline_after_ms = 60'000;
  /// Battery alert at or below (low priority). Default 20 %.
  double battery_low_percent = 20;

  /// nullopt when valid, else the name of the first invalid field.
  std::optional<std::string> validate() const;

  bool operator==(const patient_settings&) const = default;
};

/// Latest value of one metric of a patient.
struct latest_vital {
  double value = 0;
  int64_t time_ms = 0;
  std::string source_device;
  bool present = false;
};

/// One reading of a frame (patient_model::apply_frame).
struct frame_reading {
  metric m{};
  double value = 0;
  reading_quality quality = reading_quality::unspecified;
  std::string_view device;
};

/// NEWS2 history length (news2_history) and the NEWS2-rising rule: at least
/// news2_rise_points above its level news2_rise_window_ms earlier (data
/// time) raises a LOW alert (index 1 of alert_kind::news2).
inline constexpr int news2_rise_points = 2;
inline constexpr int64_t news2_rise_window_ms = 60 * 60'000;

/// A metric whose samples come further apart than this (the median of the
/// last three intervals, so one gap in a continuous signal does not count)
/// is measured intermittently (a cuff, a thermometer): its threshold alarm
/// is judged per measurement (alert_condition.hpp, per_measurement). Until
/// two intervals are known, blood pressure, temperature and glucose count
/// as intermittent, the other metrics as continuous.
inline constexpr int64_t intermittent_after_ms = 120'000;

/// NEWS2 scores an observation, not a sample: a continuous signal's level
/// over this long (exponential smoothing, each reading weighing its
/// interval / observation_ms, at most 1). At one sample every 30 s or
/// slower — a cuff, a thermometer, minute numerics — that is the reading
/// itself; at 1 s a second's noise around a score boundary no longer makes
/// the score, and its alert's onset, flicker.
inline constexpr int64_t observation_ms = 30'000;

/// A lost signal (no_signal, invalid) raises its technical alarm only if the
/// metric had a valid reading within this time: a channel never connected
/// (no arterial line) is not a lost signal.
inline constexpr int64_t signal_lost_within_ms = 10 * 60'000;

/// Everything the patient twin computes from readings: latest vitals, NEWS2
/// and its history, personal baselines, trend forecasts, signal quality, and
/// the alarm conditions over them (onset delays in time and samples,
/// hysteresis, hold times).
///
/// Readings arrive in frames: the readings that share one observation time.
/// Each reading updates its own metric's models; NEWS2 is scored once per
/// frame, after every reading of it, so the order of readings within a
/// frame never matters. Readings that are not valid (reading_quality) are
/// never charted or scored; a signal lost after it was present raises a
/// technical alarm instead.
///
/// Deterministic: the state depends only on the readings applied (and the
/// settings, applied at their log position), in order, never on the wall
/// clock — replaying the ingest log rebuilds the same state and findings.
/// Not thread-safe; owned by one patient twin.
class patient_model {
public:
  explicit patient_model(news2_settings news2 = {}) : news2_settings_(news2), settings_(defaults()) {}

  /// Applies new settings (from their log position on). Rescores NEWS2;
  /// produces no findings by itself. Settings equal to the defaults share
  /// the default instance.
  void configure(const patient_settings& s);
  /// The same with an immutable instance (a log entry's), kept as it is.
  void configure(std::shared_ptr<const patient_settings> s);
  const patient_settings& settings() const noexcept { return *settings_; }

  /// Applies the readings of one observation time `time_ms` and appends
  /// the findings they cause. A reading older than the latest of its metric
  /// is history only.
  void apply_frame(int64_t time_ms, const std::vector<frame_reading>& frame,
                   std::vector<finding>& out);

  /// One reading alone: a frame of one.
  void apply(metric m, double value, int64_t time_ms, std::string_view source_device,
             std::vector<finding>& out, reading_quality quality = reading_quality::unspecified);

  const news2_result& news2() const noexcept { return news2_; }
  const latest_vital& latest(metric m) const noexcept { return get(m).vital; }
  /// The value NEWS2 scores for `m` (the observation; see observation_ms).
  double observed(metric m) const noexcept;
  /// NEWS2 per 5 minutes over the last 2 h, oldest first.
  std::vector<news2_point> news2_history() const { return news2_history_.buckets(); }
  /// Current total minus the lowest total around `window_ms` before the
  /// newest reading (nullopt without history then).
  std::optional<int> news2_change(int64_t window_ms) const {
    return news2_history_.change(newest_ms_, news2_.total, window_ms);
  }
  const ewma_baseline& baseline(metric m) const noexcept { return get(m).baseline; }
  const holt_forecaster& forecast(metric m) const noexcept { return get(m).forecast; }
  /// Current priority of a condition (index: threshold 0 high / 1 low;
  /// trend: the forecast target; NEWS2: 1 rising; signal quality: 1 no
  /// signal; see finding).
  priority level(alert_kind k, metric m, uint8_t index = 0) const noexcept;

  /// Forces a condition's level (a clinician resolved its alert by hand).
  void reset(alert_kind k, metric m, uint8_t index, priority level);

  /// True when `m` is measured intermittently (samples further apart than
  /// intermittent_after_ms).
  bool intermittent(metric m) const noexcept;

  /// Serialized state for snapshots; decode() refuses malformed bytes and
  /// reads the previous version (threshold conditions then take the
  /// direction of the latest value).
  std::string encode() const;
  bool decode(std::string_view bytes);

private:
  alert_condition* condition(alert_kind k, metric m, uint8_t index, bool make);
  template <class Describe>
  static void evaluate(alert_condition& c, priority target, int64_t t, const condition_timing& timing,
                       Describe&& describe, std::vector<finding>& out);
  void rescore() noexcept;
  bool news2_update(metric m, double v, int64_t t) noexcept;
  struct metric_models;
  struct sampling;
  double observe(metric m, sampling& smp, double value, int64_t t) noexcept;
  static bool intermittent(metric m, const sampling& smp) noexcept;
  bool apply_reading(const frame_reading& r, int64_t t, std::vector<finding>& out);
  bool apply_valid(metric m, metric_models& mm, double value, int64_t t, std::vector<finding>& out);
  void lost_signal(metric m, metric_models& mm, bool missing, int64_t t, std::string_view device,
                   std::vector<finding>& out);
  void threshold(metric m, metric_models& mm, double value, int64_t t, std::vector<finding>& out);
  void evaluate_news2(int64_t t, std::vector<finding>& out);
  bool quality(metric m, metric_models& mm, double v, int64_t t, std::vector<finding>& out);
  bool rr_low_corroborated(int64_t t) const noexcept;

  friend struct patient_model_codec;

  news2_settings news2_settings_;
  /// Shared and immutable: every patient without settings of its own reads
  /// one default instance (1 KB less per patient, and warm in the cache).
  std::shared_ptr<const patient_settings> settings_;
  static const std::shared_ptr<const patient_settings>& defaults();
  int64_t newest_ms_ = 0;
  news2_result news2_{};
  int64_t news2_fresh_until_ = 0;  ///< no input of news2_ turns stale before this
  news2_timeline news2_history_;
  alert_condition news2_condition_;
  alert_condition news2_rising_;
  std::array<alert_condition, 6> trend_condition_{};  // one per forecast target

  struct frozen_tracker {
    double value = 0;
    int64_t since_ms = -1;
    uint32_t samples = 0;
  };
  /// Per metric: the last valid reading and the smoothed time between them.
  struct sampling {
    int64_t last_valid_ms = 0;
    std::array<float, 3> intervals_ms{};  ///< the last three, newest first; 0: none
    bool seen = false;  ///< a valid reading came
    bool missing_since_valid = false;  ///< no signal reported since the last valid one
    /// What NEWS2 scores: the signal's level over the last observation_ms
    /// (each valid reading weighs min(1, its interval / observation_ms)).
    double observed = 0;
    int64_t observed_ms = 0;
  };
  /// What the model keeps of one metric. Held only for the metrics the
  /// patient had readings of (a few of metric_count, usually): an absent
  /// one reads as this default, and its state is made on its first reading.
  struct metric_models {
    latest_vital vital;
    alert_condition threshold_high;
    alert_condition threshold_low;
    alert_condition baseline_condition;
    alert_condition quality_condition;
    alert_condition no_signal_condition;
    ewma_baseline baseline;
    holt_forecaster forecast;
    frozen_tracker frozen;
    jump_filter jump;
    sampling smp;
  };
  /// The metric's state, or nullptr before its first reading.
  const metric_models* find(metric m) const noexcept {
    auto i = static_cast<size_t>(m);
    return i < metrics_.slots.size() ? metrics_.slots[i].get() : nullptr;
  }
  /// The metric's state, made on first use. `m` in 1..metric_count.
  metric_models& at(metric m);
  /// The metric's state, or the default one.
  const metric_models& get(metric m) const noexcept {
    auto* p = find(m);
    return p ? *p : no_metric;
  }
  static const metric_models no_metric;

  /// Each metric's state, owned; a copy of the model copies them (the
  /// model's other members copy as values).
  struct metric_table {
    std::array<std::unique_ptr<metric_models>, metric_count + 1> slots{};

    metric_table() = default;
    metric_table(const metric_table& other) {
      for (size_t i = 0; i < slots.size(); ++i)
        if (other.slots[i])
          slots[i] = std::make_unique<metric_models>(*other.slots[i]);
    }
    metric_table& operator=(const metric_table& other) {
      if (this != &other)
        *this = metric_table{other};
      return *this;
    }
    metric_table(metric_table&&) noexcept = default;
    metric_table& operator=(metric_table&&) noexcept = default;
    ~metric_table() = default;
  };
  metric_table metrics_;
};

/// True when the metric is one of NEWS2's inputs.
bool is_news2_input(metric m) noexcept;

/// A threshold the trend forecasts watch.
struct forecast_target {
  metric subject;
  double threshold;
  bool below;                ///< falling below (true) or rising above
  double min_slope_per_min;  ///< slower trends are drift, not deterioration
  /// A crossing is forecast only from within this distance of the
  /// threshold: from further away a slope is a guess (a step of a noisy
  /// signal looks like one for minutes).
  double approach;
};

/// The watched thresholds; a finding's `index` is its position here.
inline constexpr std::array<forecast_target, 6> forecast_targets{{
    {metric::spo2, 90, true, 0.1, 5},
    {metric::heart_rate, 130, false, 0.3, 25},
    {metric::systolic_bp, 90, true, 0.3, 20},
    {metric::respiration_rate, 24, false, 0.1, 4},
    {metric::glucose, 70, true, 0.5, 30},
    {metric::glucose, 250, false, 0.5, 60},
}};

/// The floor on a metric's standard deviation for baseline z-scores, and
/// whether it has a baseline at all (0: none).
double baseline_sd_floor(metric m) noexcept;

}  // namespace healthtwin::models
