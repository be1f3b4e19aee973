#include "bench/twinsim/patient_sim.hpp"

#include <algorithm>
#include <cmath>

namespace healthtwin::bench {

using models::metric;

patient_sim::patient_sim(uint64_t seed, settings s) : rng_(seed), settings_(s) {
  std::normal_distribution<double> n{0, 1};
  hr_ = std::clamp(75 + 10 * n(rng_), 60.0, 92.0);
  rr_ = std::clamp(15 + 2 * n(rng_), 13.5, 18.5);
  spo2_ = std::clamp(97.5 + 1 * n(rng_), 95.5, 99.5);
  temp_ = std::clamp(36.8 + 0.3 * n(rng_), 36.2, 37.6);
  sbp_ = std::clamp(125 + 12 * n(rng_), 105.0, 150.0);
  dbp_ = std::clamp(78 + 8 * n(rng_), 60.0, 95.0);
  glucose_ = std::clamp(110 + 20 * n(rng_), 80.0, 160.0);
  if (s.start_in_episode >= 0) {
    std::uniform_int_distribution<int> kind{1, s.has_glucose_monitor ? 4 : 3};
    episode_ = static_cast<episode_kind>(kind(rng_));
    episode_length_s_ = std::uniform_real_distribution<double>{1800, 5400}(rng_);
    episode_elapsed_s_ = s.start_in_episode * episode_length_s_;
  }
}

void patient_sim::step(int64_t, double dt_s, std::vector<sim_reading>& out) {
  // Slow drift: a mean-reverting random walk.
  auto walk = [&](double& d, double sd, double limit) {
    d += noise(sd * std::sqrt(dt_s)) - d * 0.001 * dt_s;
    d = std::clamp(d, -limit, limit);
  };
  walk(drift_hr_, 0.05, 5);
  walk(drift_sbp_, 0.08, 8);
  walk(drift_temp_, 0.002, 0.4);

  // Episodes: start by chance, ramp up over the first 60 %, recover after.
  if (episode_ == episode_kind::none) {
    std::uniform_real_distribution<double> u{0, 1};
    if (u(rng_) < settings_.episodes_per_hour * dt_s / 3600) {
      std::uniform_int_distribution<int> kind{1, settings_.has_glucose_monitor ? 4 : 3};
      episode_ = static_cast<episode_kind>(kind(rng_));
      episode_elapsed_s_ = 0;
      episode_length_s_ = std::uniform_real_distribution<double>{1800, 5400}(rng_);
    }
  } else {
    episode_elapsed_s_ += dt_s;
    auto phase = episode_elapsed_s_ / episode_length_s_;
    severity_ = phase < 0.6 ? phase / 0.6 : std::max(0.0, 1 - (phase - 0.6) / 0.4);
    if (phase >= 1) {
      episode_ = episode_kind::none;
      severity_ = 0;
    }
  }
  double s = severity_;
  double hr = hr_ + drift_hr_, rr = rr_, spo2 = spo2_, temp = temp_ + drift_temp_;
  double sbp = sbp_ + drift_sbp_, dbp = dbp_, glucose = glucose_;
  int acvpu = 0;
  switch (episode_) {
    case episode_kind::sepsis:  // tachycardia, tachypnoea, fever, hypotension
      hr += 45 * s;
      rr += 14 * s;
      temp += 2.2 * s;
      sbp -= 45 * s;
      dbp -= 20 * s;
      if (s > 0.8)
        acvpu = 1;
      break;
    case episode_kind::respiratory:  // falling saturation, rising rate
      spo2 -= 12 * s;
      rr += 16 * s;
      hr += 20 * s;
      break;
    case episode_kind::cardiac:  // fast, fluctuating rate, falling pressure
      hr += 70 * s + 10 * s * std::sin(episode_elapsed_s_ / 20);
      sbp -= 35 * s;
      spo2 -= 4 * s;
      break;
    case episode_kind::hypoglycaemia:
      glucose = glucose_ - (glucose_ - 45) * s;
      hr += 15 * s;
      if (s > 0.85)
        acvpu = 1;
      break;
    case episode_kind::none:
      break;
  }
  on_oxygen_ = spo2 < 93;  // ward staff would start oxygen

  auto push = [&](metric m, double v, bool chart = false) {
    auto r = models::range_of(m);
    out.push_back(sim_reading{m, std::clamp(v, r.min, r.max), chart});
  };
  push(metric::heart_rate, std::round(hr + noise(2)));
  push(metric::respiration_rate, std::round(rr + noise(0.6)));
  push(metric::spo2, std::round(std::min(100.0, spo2 + noise(0.6))));
  push(metric::temperature, std::round((temp + noise(0.05)) * 10) / 10);
  push(metric::systolic_bp, std::round(sbp + noise(3)));
  push(metric::diastolic_bp, std::round(dbp + noise(2)));
  if (settings_.has_glucose_monitor)
    push(metric::glucose, std::round(glucose + noise(3)));
  since_chart_s_ += dt_s;
  if (since_chart_s_ >= static_cast<double>(settings_.chart_interval_s)) {
    since_chart_s_ = 0;
    push(metric::consciousness, acvpu, true);
    push(metric::oxygen_flow, on_oxygen_ ? 2 : 0, true);
  }
}

}  // namespace healthtwin::bench
