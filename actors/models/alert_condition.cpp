#include "actors/models/alert_condition.hpp"

namespace healthtwin::models {

std::optional<condition_change> alert_condition::step(priority target, int64_t t,
                                                      const condition_timing& timing) noexcept {
  // Since when has the evaluated priority been at least p, for each p.
  for (int p = 1; p <= 3; ++p) {
    auto& since = s_.at_least_since[p];
    auto& samples = s_.samples_at_least[p];
    if (static_cast<int>(target) >= p) {
      if (since < 0) {
        since = t;
        samples = 0;
      }
      if (samples < UINT16_MAX)
        ++samples;
    } else {
      since = -1;
      samples = 0;
    }
  }
  if (target > s_.active) {
    s_.easing_since = -1;
    // Rise to the highest priority whose own delay has elapsed.
    auto best = priority::none;
    for (int p = static_cast<int>(s_.active) + 1; p <= static_cast<int>(target); ++p) {
      auto since = s_.at_least_since[p];
      if (since >= 0 && t - since >= timing.onset_ms[p] &&
          s_.samples_at_least[p] >= timing.onset_samples[p])
        best = static_cast<priority>(p);
    }
    if (best == priority::none)
      return std::nullopt;
    condition_change c{best, s_.active};
    s_.active = best;
    return c;
  }
  if (target == s_.active) {
    s_.easing_since = -1;
    return std::nullopt;
  }
  // Lower (or clear) only after the hold time.
  if (s_.easing_since < 0)
    s_.easing_since = t;
  if (t - s_.easing_since < timing.hold_ms)
    return std::nullopt;
  condition_change c{target, s_.active};
  s_.active = target;
  s_.easing_since = -1;
  return c;
}

void alert_condition::reset(priority level) noexcept {
  s_.active = level;
  s_.easing_since = -1;
  // Priorities above the new level start their onset delay afresh.
  for (int p = static_cast<int>(level) + 1; p <= 3; ++p) {
    s_.at_least_since[p] = -1;
    s_.samples_at_least[p] = 0;
  }
}

}  // namespace healthtwin::models
