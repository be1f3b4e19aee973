#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "actors/models/alert_policy.hpp"
#include "actors/models/metric.hpp"
#include "actors/models/news2_score.hpp"

namespace healthtwin::models {

/// Latest value of one metric of a patient.
struct latest_vital {
  double value = 0;
  int64_t time_ms = 0;
  std::string source_device;
  bool present = false;
};

/// Everything the patient twin computes from readings: latest vitals, NEWS2
/// and the alarm conditions. Deterministic: the result depends only on the
/// readings applied, in order, never on the wall clock, so replaying the
/// ingest log rebuilds the same state.
///
/// Not thread-safe; owned by one patient twin.
class patient_model {
public:
  explicit patient_model(news2_settings settings = {}) : settings_(settings) {}

  /// Sets the per-patient NEWS2 SpO2 scale and rescores (no findings).
  void set_spo2_scale2(bool on) noexcept;

  /// Applies one reading of the patient. A reading older than the latest
  /// value of its metric is history only: it changes no vital and no alarm.
  /// Appends 0-2 findings to `out`.
  void apply(metric m, double value, int64_t time_ms, std::string_view source_device,
             std::vector<finding>& out);

  const news2_result& news2() const noexcept { return news2_; }
  const latest_vital& latest(metric m) const noexcept {
    return vitals_[static_cast<size_t>(m)];
  }
  const alert_policy& policy() const noexcept { return policy_; }
  alert_policy& policy() noexcept { return policy_; }

  /// Restores a latest value from a snapshot (call rescore() afterwards).
  void restore_vital(metric m, double value, int64_t time_ms, std::string source_device);

  /// Recomputes NEWS2 from the latest vitals without producing findings.
  void rescore() noexcept;

private:
  news2_inputs inputs() const noexcept;

  news2_settings settings_;
  bool spo2_scale2_ = false;
  int64_t newest_ms_ = 0;
  std::array<latest_vital, metric_count + 1> vitals_{};
  news2_result news2_{};
  alert_policy policy_;
};

/// True when the metric is one of NEWS2's inputs.
bool is_news2_input(metric m) noexcept;

}  // namespace healthtwin::models
