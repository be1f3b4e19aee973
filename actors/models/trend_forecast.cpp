#include "actors/models/trend_forecast.hpp"

#include <algorithm>

namespace healthtwin::models {

void holt_forecaster::update(double x, int64_t t, const trend_settings& s) noexcept {
  if (st_.n == 0) {
    st_ = state{x, 0, t, t, 1};
    return;
  }
  auto dt = static_cast<double>(std::max<int64_t>(t - st_.last_ms, 1));
  auto alpha = dt / (static_cast<double>(s.level_tau_ms) + dt);
  auto beta = dt / (static_cast<double>(s.trend_tau_ms) + dt);
  auto previous = st_.level;
  st_.level = alpha * x + (1 - alpha) * (st_.level + st_.trend * dt);
  st_.trend = beta * (st_.level - previous) / dt + (1 - beta) * st_.trend;
  st_.last_ms = t;
  ++st_.n;
}

std::optional<int64_t> holt_forecaster::time_to_cross(double threshold, bool below,
                                                      int64_t horizon_ms, int64_t t,
                                                      const trend_settings& s) const noexcept {
  if (st_.n < 2 || t - st_.first_ms < s.warmup_ms)
    return std::nullopt;
  auto gap = threshold - st_.level;  // what must still change
  if ((below && gap >= 0) || (!below && gap <= 0))
    return std::nullopt;  // already crossed: the threshold alarm's business
  if ((below && st_.trend >= 0) || (!below && st_.trend <= 0))
    return std::nullopt;  // moving away
  auto ms = gap / st_.trend;
  if (ms > static_cast<double>(horizon_ms))
    return std::nullopt;
  return static_cast<int64_t>(ms);
}

}  // namespace healthtwin::models
