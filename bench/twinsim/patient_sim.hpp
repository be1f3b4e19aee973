#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "actors/models/metric.hpp"

namespace healthtwin::bench {

/// A deterioration pattern (../shared/DOMAIN.md): what a simulated episode
/// does to the vitals while it ramps up.
enum class episode_kind : uint8_t { none, sepsis, respiratory, cardiac, hypoglycaemia };

/// One simulated reading of one patient.
struct sim_reading {
  models::metric metric;
  double value;
  bool from_chart;  ///< charted observation (ACVPU, oxygen) rather than the monitor
};

/// A synthetic patient: personal baselines, measurement noise, slow drift
/// and occasional deterioration episodes that ramp up over tens of minutes
/// and recover. Values are rounded to device precision (whole numbers;
/// 0.1 degC). Deterministic for a given seed.
class patient_sim {
public:
  struct settings {
    /// Chance per simulated hour that a stable patient starts an episode.
    double episodes_per_hour = 0.05;
    /// Charted observations (ACVPU, oxygen) every this many seconds.
    int64_t chart_interval_s = 600;
    bool has_glucose_monitor = false;
    /// Start already this far (0..1) into an episode; < 0: stable.
    double start_in_episode = -1;
  };

  patient_sim(uint64_t seed, settings s);

  /// Advances the patient by `dt_s` seconds to `time_ms` and appends the
  /// readings taken at that moment.
  void step(int64_t time_ms, double dt_s, std::vector<sim_reading>& out);

  episode_kind episode() const noexcept { return episode_; }
  /// 0 (none) .. 1 (peak) severity of the current episode.
  double severity() const noexcept { return severity_; }

private:
  double noise(double sd) { return std::normal_distribution<double>{0, sd}(rng_); }

  std::mt19937_64 rng_;
  settings settings_;
  // Personal baselines.
  double hr_, rr_, spo2_, temp_, sbp_, dbp_, glucose_;
  // Slow random-walk drift, added to the baselines.
  double drift_hr_ = 0, drift_sbp_ = 0, drift_temp_ = 0;
  episode_kind episode_ = episode_kind::none;
  double severity_ = 0;
  double episode_elapsed_s_ = 0;
  double episode_length_s_ = 0;
  double since_chart_s_ = 1e9;
  bool on_oxygen_ = false;
};

}  // namespace healthtwin::bench
