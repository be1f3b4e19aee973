// A patient's clinical settings and the per-metric facts the patient model
// reads (patient_model.hpp).
#include <cmath>

#include "actors/models/patient_model.hpp"

namespace healthtwin::models {

bool is_news2_input(metric m) noexcept {
  switch (m) {
    case metric::respiration_rate:
    case metric::spo2:
    case metric::oxygen_flow:
    case metric::systolic_bp:
    case metric::heart_rate:
    case metric::consciousness:
    case metric::temperature:
      return true;
    default:
      return false;
  }
}

double baseline_sd_floor(metric m) noexcept {
  switch (m) {
    case metric::heart_rate: return 3;
    case metric::respiration_rate: return 1.0;
    case metric::spo2: return 0.5;
    case metric::temperature: return 0.2;
    case metric::systolic_bp: return 6;
    case metric::diastolic_bp: return 4;
    case metric::glucose: return 8;
    default: return 0;
  }
}

std::optional<std::string> patient_settings::validate() const {
  for (uint8_t n = 1; n <= metric_count; ++n) {
    auto& l = limits[n];
    if (!l)
      continue;
    auto r = range_of(static_cast<metric>(n));
    auto in_range = [&](const std::optional<double>& v) {
      return !v || (std::isfinite(*v) && *v >= r.min && *v <= r.max);
    };
    if (!l->consistent() || !std::isfinite(l->hysteresis) || !in_range(l->high_at_or_below) ||
        !in_range(l->medium_at_or_below) || !in_range(l->medium_at_or_above) ||
        !in_range(l->high_at_or_above))
      return "limits." + std::string{to_string(static_cast<metric>(n))};
  }
  if (!(baseline_k >= 2 && baseline_k <= 10))
    return "baseline_k";
  if (baseline_min_duration_ms < 60'000 || baseline_min_duration_ms > 3'600'000)
    return "baseline_min_duration_ms";
  if (forecast_horizon_ms < 60'000 || forecast_horizon_ms > 7'200'000)
    return "forecast_horizon_ms";
  if (glucose_forecast_horizon_ms < 60'000 || glucose_forecast_horizon_ms > 7'200'000)
    return "glucose_forecast_horizon_ms";
  if (device_offline_after_ms < 10'000 || device_offline_after_ms > 86'400'000)
    return "device_offline_after_ms";
  if (!(battery_low_percent >= 0 && battery_low_percent <= 100))
    return "battery_low_percent";
  return std::nullopt;
}

}  // namespace healthtwin::models
