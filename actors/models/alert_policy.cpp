#include "actors/models/alert_policy.hpp"

#include <algorithm>

namespace healthtwin::models {

priority threshold_limits::level_of(double v, double margin) const noexcept {
  auto below = [&](const std::optional<double>& limit) { return limit && v <= *limit + margin; };
  auto above = [&](const std::optional<double>& limit) { return limit && v >= *limit - margin; };
  if (below(high_at_or_below) || above(high_at_or_above))
    return priority::high;
  if (below(medium_at_or_below) || above(medium_at_or_above))
    return priority::medium;
  return priority::none;
}

std::optional<threshold_limits> default_limits(metric m) noexcept {
  switch (m) {
    case metric::heart_rate: return threshold_limits{40, 50, 130, 150, 5};
    case metric::spo2: return threshold_limits{85, 90, std::nullopt, std::nullopt, 2};
    case metric::respiration_rate: return threshold_limits{8, 10, 25, 30, 2};
    case metric::systolic_bp: return threshold_limits{80, 90, 180, 220, 5};
    case metric::diastolic_bp: return threshold_limits{std::nullopt, 40, 110, 120, 5};
    case metric::temperature: return threshold_limits{34.0, 35.0, 39.1, 41.0, 0.3};
    case metric::glucose: return threshold_limits{54, 70, 250, 400, 10};
    default: return std::nullopt;
  }
}

priority alert_policy::priority_of(news2_band b) noexcept {
  switch (b) {
    case news2_band::high: return priority::high;
    case news2_band::medium: return priority::medium;
    case news2_band::low_medium: return priority::low;
    case news2_band::low: break;
  }
  return priority::none;
}

std::optional<finding> alert_policy::change_to(alert_kind k, metric m, priority& current,
                                               priority next, double value) noexcept {
  if (next == current)
    return std::nullopt;
  finding f{k, m, next, current, value, finding::change::raised};
  if (current == priority::none)
    f.what = finding::change::raised;
  else if (next == priority::none)
    f.what = finding::change::cleared;
  else if (next > current)
    f.what = finding::change::escalated;
  else
    f.what = finding::change::deescalated;
  current = next;
  return f;
}

std::optional<finding> alert_policy::on_vital(metric m, double value) noexcept {
  auto limits = default_limits(m);
  if (!limits)
    return std::nullopt;
  auto& current = threshold_levels_[static_cast<size_t>(m)];
  auto raw = limits->level_of(value);
  auto next = raw;
  if (raw < current)  // keep the higher level while within the hysteresis band
    next = std::max(raw, std::min(current, limits->level_of(value, limits->hysteresis)));
  return change_to(alert_kind::threshold, m, current, next, value);
}

std::optional<finding> alert_policy::on_news2(const news2_result& r) noexcept {
  bool any_three = r.band == news2_band::low_medium ||
                   std::any_of(r.parts.begin(), r.parts.end(),
                               [](const news2_part& p) { return p.score == 3; });
  auto raw = priority_of(r.band);
  auto next = raw;
  if (raw < news2_level_) {
    // Hysteresis of one point: leaving >= 7 needs <= 5, leaving >= 5 needs <= 3.
    auto with_margin = priority_of(band_of(static_cast<uint8_t>(r.total + 1), any_three));
    next = std::max(raw, std::min(news2_level_, with_margin));
  }
  return change_to(alert_kind::news2, metric{}, news2_level_, next, r.total);
}

void alert_policy::restore(alert_kind k, metric m, priority level) noexcept {
  if (k == alert_kind::news2)
    news2_level_ = level;
  else if (static_cast<size_t>(m) < threshold_levels_.size())
    threshold_levels_[static_cast<size_t>(m)] = level;
}

}  // namespace healthtwin::models
