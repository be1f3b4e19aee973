#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/models/alert_condition.hpp"
#include "actors/models/alert_policy.hpp"
#include "actors/models/baseline.hpp"
#include "actors/models/metric.hpp"
#include "actors/models/news2_score.hpp"
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
};

/// Latest value of one metric of a patient.
struct latest_vital {
  double value = 0;
  int64_t time_ms = 0;
  std::string source_device;
  bool present = false;
};

/// One point of the NEWS2 history: the lowest total of a 5-minute bucket
/// (the lowest, so that a transient rise never becomes a reference).
struct news2_point {
  int64_t time_ms = 0;  ///< start of the bucket
  uint8_t total = 0;
  bool complete = false;
};

/// NEWS2 history granularity and length: 5-minute buckets over 2 h.
inline constexpr int64_t news2_bucket_ms = 5 * 60'000;
inline constexpr size_t news2_buckets = 24;
/// NEWS2 rising: at least this many points above its level this long ago
/// raises a LOW alert (index 1 of alert_kind::news2).
inline constexpr int news2_rise_points = 2;
inline constexpr int64_t news2_rise_window_ms = 60 * 60'000;

/// Everything the patient twin computes from readings: latest vitals, NEWS2
/// and its history, personal baselines, trend forecasts, signal quality, and
/// the alarm conditions over them (onset delays, hysteresis, hold times).
///
/// Deterministic: the state depends only on the readings applied (and the
/// settings, applied at their log position), in order, never on the wall
/// clock — replaying the ingest log rebuilds the same state and findings.
/// Not thread-safe; owned by one patient twin.
class patient_model {
public:
  explicit patient_model(news2_settings news2 = {}) : news2_settings_(news2) {}

  /// Applies new settings (from their log position on). Rescores NEWS2;
  /// produces no findings by itself.
  void configure(const patient_settings& s);
  const patient_settings& settings() const noexcept { return settings_; }

  /// Applies one reading of the patient and appends the findings it causes.
  /// A reading older than the latest of its metric is history only.
  void apply(metric m, double value, int64_t time_ms, std::string_view source_device,
             std::vector<finding>& out);

  const news2_result& news2() const noexcept { return news2_; }
  const latest_vital& latest(metric m) const noexcept { return vitals_[static_cast<size_t>(m)]; }
  /// NEWS2 per 5 minutes over the last 2 h, oldest first.
  std::vector<news2_point> news2_history() const;
  /// Current total minus the lowest total of the bucket `window_ms` before
  /// the newest reading (nullopt without history that old).
  std::optional<int> news2_change(int64_t window_ms) const;
  const ewma_baseline& baseline(metric m) const noexcept { return baselines_[static_cast<size_t>(m)]; }
  const holt_forecaster& forecast(metric m) const noexcept { return forecasts_[static_cast<size_t>(m)]; }
  /// Current priority of a condition (index: trend direction, see finding).
  priority level(alert_kind k, metric m, uint8_t index = 0) const noexcept;

  /// Forces a condition's level (a clinician resolved its alert by hand).
  void reset(alert_kind k, metric m, uint8_t index, priority level) noexcept;

  /// Serialized state for snapshots; decode() refuses malformed bytes.
  std::string encode() const;
  bool decode(std::string_view bytes);

private:
  alert_condition* condition(alert_kind k, metric m, uint8_t index) noexcept;
  void evaluate(alert_condition& c, priority target, int64_t t, const condition_timing& timing,
                finding f, std::vector<finding>& out);
  void rescore() noexcept;
  bool news2_update(metric m, double v, int64_t t) noexcept;
  void record_news2(int64_t t);
  bool quality(metric m, double v, int64_t t, const latest_vital& src, std::vector<finding>& out);

  news2_settings news2_settings_;
  patient_settings settings_;
  int64_t newest_ms_ = 0;
  std::array<latest_vital, metric_count + 1> vitals_{};
  news2_result news2_{};
  int64_t news2_fresh_until_ = 0;  ///< no input of news2_ turns stale before this
  std::array<news2_point, news2_buckets> news2_ring_{};
  uint8_t news2_ring_size_ = 0;
  uint8_t news2_ring_head_ = 0;
  std::array<ewma_baseline, metric_count + 1> baselines_{};
  std::array<holt_forecaster, metric_count + 1> forecasts_{};
  std::array<alert_condition, metric_count + 1> threshold_{};
  alert_condition news2_condition_;
  alert_condition news2_rising_;
  std::array<alert_condition, metric_count + 1> baseline_condition_{};
  std::array<alert_condition, 6> trend_condition_{};  // one per forecast target
  std::array<alert_condition, metric_count + 1> quality_condition_{};
  struct frozen_tracker {
    double value = 0;
    int64_t since_ms = -1;
    uint32_t samples = 0;
  };
  std::array<frozen_tracker, metric_count + 1> frozen_{};
  /// Abrupt-change filter of the continuous signals (see held_back()).
  struct jump_tracker {
    double reference = 0;     ///< smoothed recent level (30 s)
    int64_t reference_ms = -1;
    int64_t jump_since = -1;  ///< first reading of an unconfirmed jump; -1: none
  };
  std::array<jump_tracker, metric_count + 1> jumps_{};
  bool held_back(metric m, double v, int64_t t) noexcept;
};

/// True when the metric is one of NEWS2's inputs.
bool is_news2_input(metric m) noexcept;

/// A threshold the trend forecasts watch.
struct forecast_target {
  metric subject;
  double threshold;
  bool below;                ///< falling below (true) or rising above
  double min_slope_per_min;  ///< slower trends are drift, not deterioration
};

/// The watched thresholds; a finding's `index` is its position here.
inline constexpr std::array<forecast_target, 6> forecast_targets{{
    {metric::spo2, 90, true, 0.1},
    {metric::heart_rate, 130, false, 0.3},
    {metric::systolic_bp, 90, true, 0.3},
    {metric::respiration_rate, 24, false, 0.1},
    {metric::glucose, 70, true, 0.5},
    {metric::glucose, 250, false, 0.5},
}};

/// A continuous signal that moves further than this from its recent level
/// (30 s smoothing) at once is held back until the new level has lasted
/// `jump_confirm_ms` (motion artefacts, spikes); 0: no filter.
double jump_limit(metric m) noexcept;
inline constexpr int64_t jump_confirm_ms = 45'000;

/// The floor on a metric's standard deviation for baseline z-scores, and
/// whether it has a baseline at all (0: none).
double baseline_sd_floor(metric m) noexcept;

}  // namespace healthtwin::models
