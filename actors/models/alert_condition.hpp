#pragma once

#include <cstdint>
#include <optional>

namespace healthtwin::models {

/// IEC 60601-1-8 alarm priority. Numbers equal healthtwin.v1.Priority;
/// `none` means "no alarm condition".
enum class priority : uint8_t { none = 0, low = 1, medium = 2, high = 3 };

/// Timing of one alarm condition, in data time (milliseconds of device
/// clock), so that replaying the same readings gives the same alerts.
struct condition_timing {
  /// A condition must hold this long before it is raised (or escalated) to
  /// each priority: the "condition delay" that removes most short
  /// artefacts (Görges 2009: a 14 s delay removed half the ineffective
  /// alarms). Index = priority.
  int64_t onset_ms[4] = {0, 30'000, 15'000, 5'000};
  /// A condition must have eased this long before it is lowered or cleared.
  int64_t hold_ms = 30'000;
  /// ... and hold for this many samples (the reading that starts it
  /// included): at one sample a minute an onset of 30 s is no delay at all.
  /// Index = priority.
  uint16_t onset_samples[4] = {0, 0, 0, 0};
};

/// A condition judged per measurement (a cuff's blood pressure every 15-60
/// min, a temperature): raised at once to the level of the measurement,
/// lowered or cleared by the next measurement.
inline constexpr condition_timing per_measurement{{0, 0, 0, 0}, 0, {0, 1, 1, 1}};

/// What an evaluation changed.
struct condition_change {
  priority level;     ///< new priority (none: cleared)
  priority previous;
};

/// The state machine of one alarm condition: the evaluated priority (after
/// value hysteresis) must persist for its onset delay before the condition
/// rises to it, and a lower priority must persist for the hold time before
/// the condition falls to it. De-duplicates by construction.
///
/// A plain value type (56 bytes); not thread-safe.
class alert_condition {
public:
  /// Feeds the priority the latest value calls for, at data time `t_ms`.
  std::optional<condition_change> evaluate(priority target, int64_t t_ms,
                                           const condition_timing& timing) noexcept {
    if (target == priority::none && idle())
      return std::nullopt;  // the common case: nothing called for, nothing pending
    return step(target, t_ms, timing);
  }

  /// No level, no onset running and not easing: feeding `none` changes
  /// nothing.
  bool idle() const noexcept {
    return s_.active == priority::none && s_.at_least_since[1] < 0 && s_.easing_since < 0;
  }

  priority level() const noexcept { return s_.active; }

  /// Forces the level (a clinician resolving by hand). Higher priorities
  /// start their onset delay afresh: a condition still present re-raises
  /// after its delay.
  void reset(priority level) noexcept;

  struct state {
    priority active = priority::none;
    int64_t at_least_since[4] = {-1, -1, -1, -1};  ///< index = priority; -1: not now
    int64_t easing_since = -1;                     ///< -1: not easing
    uint16_t samples_at_least[4] = {0, 0, 0, 0};   ///< samples since at_least_since

    bool operator==(const state&) const = default;
  };
  const state& save() const noexcept { return s_; }
  void restore(const state& s) noexcept { s_ = s; }

private:
  std::optional<condition_change> step(priority target, int64_t t_ms, const condition_timing& timing) noexcept;

  state s_;
};

}  // namespace healthtwin::models
