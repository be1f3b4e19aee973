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
};

/// Holt's linear (double exponential) smoothing over irregularly spaced
/// samples: a level and a slope per millisecond, used to predict when a
/// threshold will be crossed.
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

  struct state {
    double level = 0;
    double trend = 0;  ///< per millisecond
    int64_t first_ms = 0;
    int64_t last_ms = 0;
    uint32_t n = 0;
  };
  const state& save() const noexcept { return st_; }
  void restore(const state& s) noexcept { st_ = s; }

private:
  state st_;
};

}  // namespace healthtwin::models
