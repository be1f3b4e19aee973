#pragma once

#include <cstdint>

namespace healthtwin::models {

/// How a patient's own normal is learnt.
struct baseline_settings {
  /// Half-life of the exponentially weighted mean and variance. Default 4 h.
  int64_t half_life_ms = 4 * 3'600'000;
  /// No anomaly before this much data time has been seen. Default 30 min.
  int64_t warmup_ms = 30 * 60'000;
  /// ... and at least this many samples. Default 60.
  uint32_t warmup_samples = 60;
  /// While a value is anomalous it is learnt this many times more slowly,
  /// so that a deterioration is not absorbed into "normal". Default 10.
  double anomalous_slowdown = 10;
};

/// A patient's own normal for one metric: an exponentially weighted moving
/// mean and variance over irregularly spaced samples (West 1979), with a
/// warm-up. z-scores use a floor on the standard deviation so that a very
/// steady signal does not turn every small wobble into an anomaly.
///
/// A plain value type; not thread-safe.
class ewma_baseline {
public:
  /// Learns `x` at data time `t_ms`. `anomalous`: learn more slowly.
  void update(double x, int64_t t_ms, bool anomalous, const baseline_settings& s) noexcept;

  bool warmed_up(int64_t t_ms, const baseline_settings& s) const noexcept;

  /// Standard score of `x` against the baseline, with sd >= sd_floor.
  double z(double x, double sd_floor) const noexcept;

  double mean() const noexcept { return st_.mean; }
  double variance() const noexcept { return st_.var; }

  struct state {
    double mean = 0;
    double var = 0;
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
