#include "actors/models/baseline.hpp"

#include <algorithm>
#include <cmath>

namespace healthtwin::models {

namespace {

double median_of(std::vector<double> v) {
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  auto m = *mid;
  if (v.size() % 2 == 0)
    m = (m + *std::max_element(v.begin(), mid)) / 2;
  return m;
}

}  // namespace

void ewma_baseline::update(double x, int64_t t, bool anomalous, const baseline_settings& s) {
  if (!st_.started) {
    if (st_.n == 0)
      st_.first_ms = t;
    ++st_.n;
    st_.last_ms = t;
    // Keep samples spread over the warm-up (at 1 Hz, not the first 32 s).
    auto spacing = s.warmup_ms / static_cast<int64_t>(warmup_kept);
    if (st_.warmup.empty() || t - st_.last_kept_ms >= spacing) {
      if (st_.warmup.size() == warmup_kept)  // a warm-up longer than planned
        st_.warmup.erase(st_.warmup.begin());
      st_.warmup.push_back(static_cast<float>(x));
      st_.last_kept_ms = t;
    }
    if (st_.n < s.warmup_samples || t - st_.first_ms < s.warmup_ms)
      return;
    std::vector<double> kept{st_.warmup.begin(), st_.warmup.end()};
    st_.mean = median_of(kept);
    for (auto& k : kept)
      k = std::abs(k - st_.mean);
    auto sd = 1.4826 * median_of(kept);
    st_.var = sd * sd;
    st_.started = true;
    std::vector<float>{}.swap(st_.warmup);  // its memory goes
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

double ewma_baseline::z(double x, double sd_floor) const noexcept {
  return (x - st_.mean) / std::sqrt(st_.var + sd_floor * sd_floor);
}

}  // namespace healthtwin::models
