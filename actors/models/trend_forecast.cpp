#include "actors/models/trend_forecast.hpp"

#include <algorithm>
#include <cmath>

namespace healthtwin::models {

void holt_forecaster::update(double x, int64_t t, const trend_settings& s) noexcept {
  if (st_.n == 0) {
    st_ = state{x, 0, t, t, 1, 0, 0};
    return;
  }
  auto dt = static_cast<double>(std::max<int64_t>(t - st_.last_ms, 1));
  st_.interval_ms = st_.n == 1 ? dt : 0.2 * dt + 0.8 * st_.interval_ms;
  auto alpha = dt / (level_tau(s) + dt);
  auto beta = dt / (trend_tau(s) + dt);
  auto error = x - (st_.level + st_.trend * dt);
  st_.residual_var = st_.n == 1 ? error * error : beta * error * error + (1 - beta) * st_.residual_var;
  auto previous = st_.level;
  st_.level = alpha * x + (1 - alpha) * (st_.level + st_.trend * dt);
  st_.trend = beta * (st_.level - previous) / dt + (1 - beta) * st_.trend;
  st_.last_ms = t;
  ++st_.n;
}

std::optional<int64_t> holt_forecaster::time_to_cross(double threshold, bool below,
                                                      int64_t horizon_ms, int64_t t,
                                                      const trend_settings& s) const noexcept {
  if (st_.n < std::max<uint32_t>(2, s.warmup_samples) || t - st_.first_ms < s.warmup_ms)
    return std::nullopt;
  if (std::abs(slope_per_min()) < s.min_slope_se * slope_se_per_min(s))
    return std::nullopt;  // not told apart from noise at this sampling rate
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

double holt_forecaster::level_tau(const trend_settings& s) const noexcept {
  return std::max(static_cast<double>(s.level_tau_ms), level_tau_samples * st_.interval_ms);
}

double holt_forecaster::trend_tau(const trend_settings& s) const noexcept {
  return std::max(static_cast<double>(s.trend_tau_ms), trend_tau_samples * st_.interval_ms);
}

double holt_forecaster::slope_se_per_min(const trend_settings& s) const noexcept {
  // A least-squares slope over a window of w with m evenly spaced samples
  // has a variance of sigma^2 * 12 / (m * w^2).
  auto w = trend_tau(s) / 60'000;  // minutes
  auto m = st_.interval_ms > 0 ? trend_tau(s) / st_.interval_ms : 1.0;
  m = std::max(2.0, std::min(m, static_cast<double>(st_.n)));
  return std::sqrt(st_.residual_var * 12 / (m * w * w));
}

}  // namespace healthtwin::models
