#pragma once

#include <cstdint>
#include <optional>

namespace healthtwin::models {

/// How trends are smoothed.
struct trend_settings {
  /// Time constant of the level (how fast noise is smoothed). Default 90 s.
  int64_t level_tau_ms = 90'000;
  /// Time constant of the slope. Default 5 min.
  int64_t trend_tau_ms = 5 * 60'000;
  /// No forecast before this much data time. Default 10 min.
  int64_t warmup_ms = 10 * 60'000;
  /// ... nor before this many samples. Default 10.
  uint32_t warmup_samples = 10;
  /// A forecast needs a slope at least this many standard errors from 0:
  /// the error of a slope fitted over trend_tau_ms from the samples it holds
  /// (sigma x sqrt(12 / (m w^2)), sigma the one-step prediction error). At
  /// 5 s sampling a real fall of 0.2 %/min in SpO2 passes; at one noisy
  /// respiration rate a minute a drift of 0.5 /min does not. Default 2.5.
  double min_slope_se = 2.5;
};

/// Holt's linear (double exponential) smoothing over irregularly spaced
/// samples: a level and a slope per millisecond, used to predict when a
/// threshold will be crossed — only when the slope stands out of the noise
/// for the sampling rate (trend_settings::min_slope_se).
///
/// A plain value type; not thread-safe.
class holt_forecaster {
public:
  void update(double x, int64_t t_ms, const trend_settings& s) noexcept;

  /// Milliseconds until the smoothed series crosses `threshold` (falling
  /// below it when `below`, rising above it otherwise), if that happens
  /// within `horizon_ms` and the series has not crossed it yet.
  std::optional<int64_t> time_to_cross(double threshold, bool below, int64_t horizon_ms,
                                       int64_t t_ms, const trend_settings& s) const noexcept;

  double level() const noexcept { return st_.level; }
  /// Slope in units per minute.
  double slope_per_min() const noexcept { return st_.trend * 60'000; }

  /// The slope's standard error per minute for the sampling seen so far.
  double slope_se_per_min(const trend_settings& s) const noexcept;

  /// The smoothing stretches with the sampling: the level spans at least
  /// this many samples, the slope at least trend_tau_samples (at one sample
  /// a minute a 5-minute slope rests on 5 noisy samples).
  static constexpr double level_tau_samples = 3;
  static constexpr double trend_tau_samples = 15;

  struct state {
    double level = 0;
    double trend = 0;  ///< per millisecond
    int64_t first_ms = 0;
    int64_t last_ms = 0;
    uint32_t n = 0;
    double residual_var = 0;  ///< one-step prediction error, smoothed over trend_tau
    double interval_ms = 0;   ///< time between samples, smoothed
  };
  const state& save() const noexcept { return st_; }
  void restore(const state& s) noexcept { st_ = s; }

private:
  double level_tau(const trend_settings& s) const noexcept;
  double trend_tau(const trend_settings& s) const noexcept;

  state st_;
};

}  // namespace healthtwin::models
