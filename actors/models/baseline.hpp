#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace healthtwin::models {

/// How a patient's own normal is learnt.
struct baseline_settings {
  /// Half-life of the exponentially weighted mean and variance. Default 4 h.
  int64_t half_life_ms = 4 * 3'600'000;
  /// No anomaly before this much data time has been seen. Default 30 min.
  int64_t warmup_ms = 30 * 60'000;
  /// ... and at least this many samples (30 min of one sample a minute has
  /// 30). Default 20.
  uint32_t warmup_samples = 20;
  /// While a value is anomalous it is learnt this many times more slowly,
  /// so that a deterioration is not absorbed into "normal". Default 10.
  double anomalous_slowdown = 10;
};

/// A patient's own normal for one metric. During the warm-up up to 32
/// samples, spread over it, are kept; at its end the baseline starts at
/// their median, with the robust spread 1.4826 x MAD — not at the first
/// reading, which an EWMA started there weighs for hours (at one sample a
/// minute ~80 % of the mean after a 30-min warm-up). From then on an
/// exponentially weighted moving mean and variance over irregularly spaced
/// samples (West 1979). z-scores use a floor on the standard deviation so
/// that a very steady signal does not turn every small wobble into an
/// anomaly.
///
/// A plain value type; not thread-safe.
class ewma_baseline {
public:
  /// Samples kept during the warm-up, at most.
  static constexpr size_t warmup_kept = 32;

  /// Learns `x` at data time `t_ms`. `anomalous`: learn more slowly.
  void update(double x, int64_t t_ms, bool anomalous, const baseline_settings& s);

  /// The warm-up is over (elapsed time and samples): z-scores mean something.
  bool warmed_up() const noexcept { return st_.started; }

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
    bool started = false;         ///< warm-up over: mean and var hold
    int64_t last_kept_ms = 0;     ///< the warm-up sample kept last
    std::vector<float> warmup;    ///< kept samples (empty once started)
  };
  const state& save() const noexcept { return st_; }
  void restore(state s) noexcept { st_ = std::move(s); }

private:
  state st_;
};

}  // namespace healthtwin::models
