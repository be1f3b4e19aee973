#include "actors/models/alert_policy.hpp"

#include <algorithm>

namespace healthtwin::models {

std::string_view to_string(alert_kind k) noexcept {
  switch (k) {
    case alert_kind::threshold: return "threshold";
    case alert_kind::news2: return "news2";
    case alert_kind::trend_forecast: return "trend_forecast";
    case alert_kind::baseline_anomaly: return "baseline_anomaly";
    case alert_kind::device_offline: return "device_offline";
    case alert_kind::battery_low: return "battery_low";
    case alert_kind::clock_drift: return "clock_drift";
    case alert_kind::signal_quality: return "signal_quality";
    case alert_kind::device_unassigned: return "device_unassigned";
  }
  return "unknown";
}

priority threshold_limits::low_level_of(double v, double margin) const noexcept {
  auto below = [&](const std::optional<double>& limit) { return limit && v <= *limit + margin; };
  if (below(high_at_or_below))
    return priority::high;
  if (below(medium_at_or_below))
    return priority::medium;
  return priority::none;
}

priority threshold_limits::high_level_of(double v, double margin) const noexcept {
  auto above = [&](const std::optional<double>& limit) { return limit && v >= *limit - margin; };
  if (above(high_at_or_above))
    return priority::high;
  if (above(medium_at_or_above))
    return priority::medium;
  return priority::none;
}

priority threshold_limits::level_of(double v, double margin) const noexcept {
  return std::max(low_level_of(v, margin), high_level_of(v, margin));
}

bool threshold_limits::consistent() const noexcept {
  if (hysteresis < 0)
    return false;
  auto le = [](const std::optional<double>& a, const std::optional<double>& b) {
    return !a || !b || *a <= *b;
  };
  auto lt = [](const std::optional<double>& a, const std::optional<double>& b) {
    return !a || !b || *a < *b;
  };
  return le(high_at_or_below, medium_at_or_below) && lt(medium_at_or_below, medium_at_or_above) &&
         le(medium_at_or_above, high_at_or_above) && lt(high_at_or_below, high_at_or_above) &&
         lt(medium_at_or_below, high_at_or_above) && lt(high_at_or_below, medium_at_or_above);
}

std::optional<threshold_limits> default_limits(metric m) noexcept {
  switch (m) {
    case metric::heart_rate: return threshold_limits{40, 50, 130, 150, 5};
    case metric::spo2: return threshold_limits{85, 90, std::nullopt, std::nullopt, 2};
    // Reviewed against monitors' factory defaults (docs/alerts.md): RR
    // <= 10 alarmed in 22 % of a stable patient's minutes on real data.
    case metric::respiration_rate: return threshold_limits{5, 8, 30, 40, 2};
    case metric::systolic_bp: return threshold_limits{80, 90, 180, 220, 5};
    case metric::diastolic_bp: return threshold_limits{std::nullopt, 40, 110, 120, 5};
    case metric::temperature: return threshold_limits{34.0, 35.0, 39.1, 41.0, 0.3};
    case metric::glucose: return threshold_limits{54, 70, 250, 400, 10};
    default: return std::nullopt;
  }
}

priority news2_priority(news2_band b) noexcept {
  switch (b) {
    case news2_band::high: return priority::high;
    case news2_band::medium: return priority::medium;
    case news2_band::low_medium: return priority::low;
    case news2_band::low: break;
  }
  return priority::none;
}

finding::change change_of(priority level, priority previous) noexcept {
  if (previous == priority::none)
    return finding::change::raised;
  if (level == priority::none)
    return finding::change::cleared;
  return level > previous ? finding::change::escalated : finding::change::deescalated;
}

}  // namespace healthtwin::models
