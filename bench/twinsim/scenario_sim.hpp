#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "actors/models/metric.hpp"
#include "bench/twinsim/patient_sim.hpp"

namespace healthtwin::bench {

/// One reading as a device reports it, and the truth behind it.
struct scenario_reading {
  int64_t time_ms;
  models::metric metric;
  double value;       ///< what the device reports (noise, artefacts; 0 for no signal)
  bool artefact;      ///< the value is no measurement of the patient (motion,
                      ///< probe off, spike, spurious low RR, no signal)
  /// What the device says of it: unspecified (a monitor's numerics: 0 for
  /// no signal) or, for devices that flag, no_signal / invalid.
  models::reading_quality quality = models::reading_quality::unspecified;
};

/// The labels of one simulated stay: the deterioration episode (if any) and
/// when it reached the clinical threshold (true NEWS2 >= 7; for
/// hypoglycaemia true glucose < 54 mg/dL).
struct scenario_labels {
  episode_kind kind = episode_kind::none;
  int64_t onset_ms = -1;      ///< deterioration starts
  int64_t threshold_ms = -1;  ///< clinical threshold reached (-1: never)
  int64_t end_ms = -1;        ///< recovered
};

/// A labelled patient stay for model evaluation, shaped like what bedside
/// monitors send: personal baselines, slow drift; HR, RR and SpO2 every
/// `sample_ms` (1 s, 5 s or one-minute numerics, all metrics of a moment
/// in one frame with one timestamp), temperature every minute, a cuff's
/// blood pressure every 10-60 min (per patient), CGM every 5 min, charted
/// ACVPU and oxygen hourly; real-world artefacts — motion bursts (median
/// 17 s, Görges 2009), probe-off periods, single-sample spikes, spells of
/// spuriously low impedance respiration rate, ECG leads off, dropped
/// packets and gaps, slow sensor drift — and "no signal" sent as monitors
/// send it: 0 (an arterial-pressure channel without a line sends 0 all
/// day), or, for devices that flag it, a reading_quality. Deteriorating
/// stays carry one episode shaped by the published patterns
/// (../shared/DOMAIN.md) ramping over 1-4 h. Deterministic for a seed.
class scenario_sim {
public:
  struct settings {
    int64_t duration_ms = 24 * 3'600'000;
    bool deteriorates = false;
    bool has_glucose_monitor = false;
    bool artefacts = true;
    /// Motion bursts, probe-off periods and spikes per hour.
    double motion_per_hour = 2;
    double probe_off_per_hour = 0.3;
    double spikes_per_hour = 4;
    /// Share of readings lost; 1-3 min gaps per hour.
    double drop_rate = 0.02;
    double gaps_per_hour = 0.3;
    /// Continuous signals (HR, RR, SpO2) every this long: 1 s, 5 s or a
    /// minute (numerics: the value at the minute mark). Default 5 s.
    int64_t sample_ms = 5000;
    /// ECG leads off (HR and impedance RR read 0), per hour; 1-20 min.
    double leads_off_per_hour = 0.15;
    /// Spells of spuriously low impedance RR (3-9 /min for 2-10 min) per hour.
    double low_rr_spells_per_hour = 1.0;
    /// Share of patients whose monitor sends an arterial-pressure channel
    /// without a line: systolic and diastolic 0 with every frame.
    double abp_without_line_share = 0.5;
    /// Share of patients whose devices flag no signal and artefacts with a
    /// reading_quality instead of sending 0.
    double flagging_share = 0.3;
  };

  scenario_sim(uint64_t seed, settings s);

  /// Every reading of the stay, in time order.
  std::vector<scenario_reading> run();

  const scenario_labels& labels() const noexcept { return labels_; }

private:
  struct truth {
    double hr, rr, spo2, temp, sbp, dbp, glucose;
    int acvpu;
    bool oxygen;
  };
  truth at(int64_t t);
  double noise(double sd) { return std::normal_distribution<double>{0, sd}(rng_); }
  double uniform(double a, double b) { return std::uniform_real_distribution<double>{a, b}(rng_); }
  bool chance(double per_hour, double dt_s) { return uniform(0, 1) < per_hour * dt_s / 3600; }

  std::mt19937_64 rng_;
  settings s_;
  int64_t cuff_interval_ms_ = 15 * 60'000;
  double rr_noise_ = 0.7;
  bool abp_zeros_ = false;
  bool flags_ = false;
  scenario_labels labels_;
  double hr_, rr_, spo2_, temp_, sbp_, dbp_, glucose_;
  double drift_hr_ = 0, drift_sbp_ = 0, drift_temp_ = 0;
  double sensor_drift_spo2_ = 0, sensor_drift_temp_ = 0;
  double ramp_ms_ = 0, plateau_ms_ = 0, recovery_ms_ = 0;
};

/// Severity (0..1) of an episode `t - onset` into it.
double episode_severity(double since_onset_ms, double ramp_ms, double plateau_ms,
                        double recovery_ms) noexcept;

}  // namespace healthtwin::bench
