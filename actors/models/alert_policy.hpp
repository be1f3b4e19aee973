#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "actors/models/alert_condition.hpp"
#include "actors/models/metric.hpp"
#include "actors/models/news2_score.hpp"

namespace healthtwin::models {

/// What raised an alert. Numbers equal healthtwin.v1.AlertKind.
enum class alert_kind : uint8_t {
  threshold = 1,          ///< a vital beyond its (per-patient) limit
  news2 = 2,              ///< NEWS2 in the low-medium, medium or high band
  trend_forecast = 3,     ///< a vital predicted to cross a threshold soon
  baseline_anomaly = 4,   ///< far from this patient's own normal
  device_offline = 5,     ///< no data from a device (technical)
  battery_low = 6,        ///< device battery (technical)
  signal_quality = 7,     ///< probe off, frozen signal (technical)
  device_unassigned = 8,  ///< a device streams without a patient (technical)
  clock_drift = 9,        ///< a device's clock is off the node's (technical)
};

inline constexpr uint8_t alert_kind_count = 9;

std::string_view to_string(alert_kind k) noexcept;

/// True for alerts about the patient's condition (not the equipment).
inline bool is_clinical(alert_kind k) noexcept {
  return k == alert_kind::threshold || k == alert_kind::news2 || k == alert_kind::trend_forecast ||
         k == alert_kind::baseline_anomaly;
}

/// Alarm limits of one metric. A value at or beyond a limit is in that
/// limit's priority; the highest matching priority wins. To drop to a lower
/// priority, the value must come back past the limit by `hysteresis`.
struct threshold_limits {
  std::optional<double> high_at_or_below;
  std::optional<double> medium_at_or_below;
  std::optional<double> medium_at_or_above;
  std::optional<double> high_at_or_above;
  double hysteresis = 0;

  /// Priority of `value` with every limit widened by `margin` towards normal.
  priority level_of(double value, double margin = 0) const noexcept;
  /// The same for the low limits alone, and for the high limits alone.
  priority low_level_of(double value, double margin = 0) const noexcept;
  priority high_level_of(double value, double margin = 0) const noexcept;

  /// True when the limits are ordered (high below <= medium below < medium
  /// above <= high above) and the hysteresis is >= 0.
  bool consistent() const noexcept;

  bool operator==(const threshold_limits&) const = default;
};

/// Population default limits (documented in docs/alerts.md); nullopt for
/// metrics without threshold alarms.
std::optional<threshold_limits> default_limits(metric m) noexcept;

/// Priority of a NEWS2 band: high -> high, medium -> medium,
/// low-medium -> low, low -> none.
priority news2_priority(news2_band b) noexcept;

/// A change of an alarm condition, to be turned into an alert event.
struct finding {
  enum class change : uint8_t { raised, escalated, deescalated, cleared };
  alert_kind kind{};
  metric subject{};          ///< the metric, where the kind has one
  priority level{};          ///< new priority (none when cleared)
  priority previous{};
  double value = 0;          ///< the value (NEWS2 total, smoothed level) behind it
  double detail = 0;         ///< z-score (baseline), slope per minute (trend)
  int64_t predicted_ms = 0;  ///< trend: when the threshold is predicted to be crossed
  std::string_view device{};  ///< source or subject device (valid until the next apply)
  change what = change::raised;
  uint8_t index = 0;         ///< tells apart conditions of one kind and metric (trend direction)
};

/// The change a (level, previous) pair represents.
finding::change change_of(priority level, priority previous) noexcept;

}  // namespace healthtwin::models
