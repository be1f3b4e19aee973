#include "actors/models/baseline.hpp"

#include <algorithm>
#include <cmath>

namespace healthtwin::models {

void ewma_baseline::update(double x, int64_t t, bool anomalous,
                           const baseline_settings& s) noexcept {
  if (st_.n == 0) {
    st_ = state{x, 0, t, t, 1};
    return;
  }
  auto dt = static_cast<double>(std::max<int64_t>(t - st_.last_ms, 1));
  // Time constant of the half-life; first-order weight dt / (tau + dt).
  auto tau = static_cast<double>(s.half_life_ms) / 0.6931471805599453;
  auto alpha = dt / (tau + dt);
  if (anomalous)
    alpha /= s.anomalous_slowdown;
  auto diff = x - st_.mean;
  st_.mean += alpha * diff;
  st_.var = (1 - alpha) * (st_.var + alpha * diff * diff);
  st_.last_ms = t;
  ++st_.n;
}

bool ewma_baseline::warmed_up(int64_t t, const baseline_settings& s) const noexcept {
  return st_.n >= s.warmup_samples && t - st_.first_ms >= s.warmup_ms;
}

double ewma_baseline::z(double x, double sd_floor) const noexcept {
  return (x - st_.mean) / std::sqrt(st_.var + sd_floor * sd_floor);
}

}  // namespace healthtwin::models
