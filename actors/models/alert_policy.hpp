#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "actors/models/metric.hpp"
#include "actors/models/news2_score.hpp"

namespace healthtwin::models {

/// IEC 60601-1-8 alarm priority. Numbers equal healthtwin.v1.Priority;
/// `none` means "no alarm condition".
enum class priority : uint8_t { none = 0, low = 1, medium = 2, high = 3 };

/// What raised an alert. Numbers equal healthtwin.v1.AlertKind.
enum class alert_kind : uint8_t { threshold = 1, news2 = 2 };

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
};

/// Population default limits (documented in docs/alerts.md); nullopt for
/// metrics without threshold alarms.
std::optional<threshold_limits> default_limits(metric m) noexcept;

/// A change of an alarm condition, to be turned into an alert event.
struct finding {
  enum class change : uint8_t { raised, escalated, deescalated, cleared };
  alert_kind kind;
  metric subject;        ///< the metric for threshold findings
  priority level;        ///< new priority (none when cleared)
  priority previous;
  double value;          ///< the value (or NEWS2 total) behind the change
  change what;
};

/// The alarm conditions of one patient: one per metric with limits, and one
/// for NEWS2. De-duplicates by construction (a condition that stays in the
/// same priority produces no finding) and applies hysteresis.
///
/// Plain value type; state is a few bytes and goes into the twin snapshot.
class alert_policy {
public:
  /// Evaluates a new latest value of `m`; returns a finding when the
  /// condition changed priority.
  std::optional<finding> on_vital(metric m, double value) noexcept;

  /// Evaluates a new NEWS2 result.
  std::optional<finding> on_news2(const news2_result& r) noexcept;

  /// Current priority of a condition (for snapshots and tests).
  priority threshold_level(metric m) const noexcept {
    return threshold_levels_[static_cast<size_t>(m)];
  }
  priority news2_level() const noexcept { return news2_level_; }

  /// Restores a condition's priority from a snapshot.
  void restore(alert_kind k, metric m, priority level) noexcept;

  /// Priority of a NEWS2 band: high -> high, medium -> medium,
  /// low-medium -> low, low -> none.
  static priority priority_of(news2_band b) noexcept;

private:
  static std::optional<finding> change_to(alert_kind k, metric m, priority& current,
                                          priority next, double value) noexcept;

  std::array<priority, metric_count + 1> threshold_levels_{};
  priority news2_level_ = priority::none;
};

}  // namespace healthtwin::models
