#include "bench/twinsim/scenario_sim.hpp"

#include <algorithm>
#include <cmath>

#include "actors/models/news2_score.hpp"

namespace healthtwin::bench {

using models::metric;

double episode_severity(double since, double ramp, double plateau, double recovery) noexcept {
  if (since < 0)
    return 0;
  if (since < ramp) {
    auto x = since / ramp;
    return x * x * (3 - 2 * x);  // smooth start: deterioration is subtle at first
  }
  if (since < ramp + plateau)
    return 1;
  return std::max(0.0, 1 - (since - ramp - plateau) / recovery);
}

scenario_sim::scenario_sim(uint64_t seed, settings s) : rng_(seed), s_(s) {
  hr_ = std::clamp(75 + 10 * noise(1), 58.0, 95.0);
  rr_ = std::clamp(15 + 2 * noise(1), 12.5, 19.0);
  spo2_ = std::clamp(97 + 1.2 * noise(1), 94.5, 99.5);
  temp_ = std::clamp(36.8 + 0.3 * noise(1), 36.2, 37.6);
  sbp_ = std::clamp(125 + 14 * noise(1), 100.0, 160.0);
  dbp_ = std::clamp(78 + 8 * noise(1), 58.0, 95.0);
  glucose_ = std::clamp(115 + 20 * noise(1), 80.0, 170.0);
  // The monitor: how often its cuff measures, how noisy its impedance RR,
  // whether it sends an arterial channel without a line, whether it flags.
  cuff_interval_ms_ = static_cast<int64_t>(uniform(10, 60)) * 60'000;
  rr_noise_ = uniform(0.7, 2.5);
  abp_zeros_ = uniform(0, 1) < s.abp_without_line_share;
  flags_ = uniform(0, 1) < s.flagging_share;
  if (s.deteriorates) {
    auto kinds = s.has_glucose_monitor ? 4 : 3;
    labels_.kind = static_cast<episode_kind>(1 + static_cast<int>(uniform(0, kinds)) % kinds);
    labels_.onset_ms = static_cast<int64_t>(uniform(2, 16) * 3'600'000);
    ramp_ms_ = uniform(60, 240) * 60'000;
    plateau_ms_ = 60 * 60'000;
    recovery_ms_ = 90 * 60'000;
    labels_.end_ms = labels_.onset_ms + static_cast<int64_t>(ramp_ms_ + plateau_ms_ + recovery_ms_);
  }
}

scenario_sim::truth scenario_sim::at(int64_t t) {
  truth x{hr_ + drift_hr_, rr_, spo2_, temp_ + drift_temp_, sbp_ + drift_sbp_, dbp_, glucose_,
          0, false};
  auto s = episode_severity(static_cast<double>(t - labels_.onset_ms), ramp_ms_, plateau_ms_,
                            recovery_ms_);
  if (labels_.onset_ms < 0)
    s = 0;
  switch (labels_.kind) {
    case episode_kind::sepsis:  // tachycardia, tachypnoea, fever, hypotension, confusion
      x.hr += 50 * s;
      x.rr += 14 * s;
      x.temp += 2.2 * s;
      x.sbp -= 45 * s;
      x.dbp -= 20 * s;
      x.acvpu = s > 0.85 ? 1 : 0;
      break;
    case episode_kind::respiratory:  // falling saturation, rising rate
      x.spo2 -= 12 * s;
      x.rr += 16 * s;
      x.hr += 20 * s;
      break;
    case episode_kind::cardiac:  // fast, fluctuating rate; low, fluctuating pressure
      x.hr += 65 * s + 8 * s * std::sin(static_cast<double>(t) / 20'000);
      x.sbp -= 40 * s + 6 * s * std::sin(static_cast<double>(t) / 90'000);
      x.rr += 9 * s;
      x.spo2 -= 4 * s;
      break;
    case episode_kind::hypoglycaemia:
      x.glucose = glucose_ - (glucose_ - 42) * s;
      x.hr += 18 * s;
      x.acvpu = s > 0.9 ? 1 : 0;
      break;
    case episode_kind::none: break;
  }
  x.oxygen = x.spo2 < 93;  // ward staff start oxygen
  return x;
}

std::vector<scenario_reading> scenario_sim::run() {
  std::vector<scenario_reading> out;
  // Physiology and artefacts move in steps of at most 5 s; the continuous
  // signals are sent every sample_ms (a minute's numerics: the value at the
  // minute mark).
  const int64_t step = std::min<int64_t>(s_.sample_ms, 5000);
  int64_t motion_until = -1, probe_off_until = -1, gap_until = -1, leads_off_until = -1,
          low_rr_until = -1;
  double motion_hr = 0, motion_spo2 = 0, low_rr = 0;
  using q = models::reading_quality;
  for (int64_t t = 0; t < s_.duration_ms; t += step) {
    double dt = static_cast<double>(step) / 1000.0;
    auto walk = [&](double& d, double sd, double limit) {
      d += noise(sd * std::sqrt(dt)) - d * 0.0005 * dt;
      d = std::clamp(d, -limit, limit);
    };
    walk(drift_hr_, 0.05, 6);
    walk(drift_sbp_, 0.08, 10);
    walk(drift_temp_, 0.002, 0.4);
    if (s_.artefacts) {
      walk(sensor_drift_spo2_, 0.004, 1.5);
      walk(sensor_drift_temp_, 0.001, 0.3);
    }
    auto x = at(t);
    if (labels_.kind != episode_kind::none && labels_.threshold_ms < 0 && t >= labels_.onset_ms) {
      bool reached = false;
      if (labels_.kind == episode_kind::hypoglycaemia) {
        reached = x.glucose < 54;
      } else {
        models::news2_inputs in;
        in.respiration_rate = models::observation{x.rr, t};
        in.spo2 = models::observation{x.spo2, t};
        in.oxygen_flow = models::observation{x.oxygen ? 2.0 : 0.0, t};
        in.systolic_bp = models::observation{x.sbp, t};
        in.pulse = models::observation{x.hr, t};
        in.consciousness = models::observation{static_cast<double>(x.acvpu), t};
        in.temperature = models::observation{x.temp, t};
        reached = models::score_news2(in, t, {}).total >= 7;
      }
      if (reached)
        labels_.threshold_ms = t;
    }

    // Artefacts start by chance.
    if (s_.artefacts) {
      if (t >= motion_until && chance(s_.motion_per_hour, dt)) {
        // Log-normal length, median 17 s.
        auto len = std::exp(std::log(17.0) + 0.7 * noise(1)) * 1000;
        motion_until = t + static_cast<int64_t>(len);
        motion_hr = uniform(20, 60);
        motion_spo2 = uniform(3, 12);
      }
      if (t >= probe_off_until && chance(s_.probe_off_per_hour, dt))
        probe_off_until = t + static_cast<int64_t>(uniform(20, 300) * 1000);
      if (t >= gap_until && chance(s_.gaps_per_hour, dt))
        gap_until = t + static_cast<int64_t>(uniform(60, 180) * 1000);
      if (t >= leads_off_until && chance(s_.leads_off_per_hour, dt))
        leads_off_until = t + static_cast<int64_t>(uniform(60, 1200) * 1000);
      if (t >= low_rr_until && chance(s_.low_rr_spells_per_hour, dt)) {
        low_rr_until = t + static_cast<int64_t>(uniform(120, 600) * 1000);
        low_rr = uniform(3, 9);
      }
    }
    if (t < gap_until)
      continue;
    bool moving = t < motion_until;
    bool probe_off = t < probe_off_until;
    bool leads_off = t < leads_off_until;
    auto push = [&](metric m, double v, bool artefact, q quality = q::unspecified) {
      if (s_.artefacts && uniform(0, 1) < s_.drop_rate)
        return;
      auto r = models::range_of(m);
      out.push_back(scenario_reading{t, m, quality == q::unspecified || quality == q::valid
                                               ? std::clamp(v, r.min, r.max)
                                               : v,
                                     artefact, quality});
    };
    // No signal: a monitor sends 0, a flagging device says so.
    auto no_signal = [&](metric m) { push(m, 0, true, flags_ ? q::no_signal : q::unspecified); };
    if (t % s_.sample_ms == 0) {
      bool spike = s_.artefacts && chance(s_.spikes_per_hour, static_cast<double>(s_.sample_ms) / 1000);
      auto spike_metric = static_cast<int>(uniform(0, 3));
      if (leads_off) {
        no_signal(metric::heart_rate);
        no_signal(metric::respiration_rate);  // impedance RR through the ECG leads
      } else {
        double hr = std::round(x.hr + noise(2) + (moving ? motion_hr : 0));
        if (spike && spike_metric == 0)
          hr = std::round(uniform(150, 200));
        push(metric::heart_rate, hr, moving || (spike && spike_metric == 0));
        bool low_spell = t < low_rr_until;
        double rr = std::round(x.rr + noise(rr_noise_) + (moving ? 6 : 0));
        if (low_spell)
          rr = std::round(low_rr + noise(1));
        if (spike && spike_metric == 1)
          rr = std::round(uniform(30, 45));
        push(metric::respiration_rate, std::max(1.0, rr), moving || low_spell || (spike && spike_metric == 1));
      }
      if (probe_off) {
        if (flags_ || uniform(0, 1) < 0.5)
          no_signal(metric::spo2);
        else
          push(metric::spo2, std::round(uniform(1, 45)), true);
      } else {
        double spo2 = std::round(std::min(100.0, x.spo2 + sensor_drift_spo2_ + noise(0.6) -
                                                     (moving ? motion_spo2 : 0)));
        if (spike && spike_metric == 2)
          spo2 = std::round(uniform(70, 85));
        bool artefact = moving || (spike && spike_metric == 2);
        push(metric::spo2, spo2, artefact, flags_ && moving ? q::invalid : q::unspecified);
      }
      if (abp_zeros_) {  // the arterial channel, never connected
        push(metric::systolic_bp, 0, true);
        push(metric::diastolic_bp, 0, true);
      }
    }
    if (t % 60'000 == 0)
      push(metric::temperature, std::round((x.temp + sensor_drift_temp_ + noise(0.05)) * 10) / 10,
           false);
    if (t % cuff_interval_ms_ == 0) {
      push(metric::systolic_bp, std::round(x.sbp + noise(4)), false);
      push(metric::diastolic_bp, std::round(x.dbp + noise(3)), false);
    }
    if (s_.has_glucose_monitor && t % (5 * 60'000) == 0)
      push(metric::glucose, std::round(x.glucose + noise(4)), false);
    if (t % 3'600'000 == 0) {
      push(metric::consciousness, x.acvpu, false);
      push(metric::oxygen_flow, x.oxygen ? 2 : 0, false);
    }
  }
  return out;
}

}  // namespace healthtwin::bench
