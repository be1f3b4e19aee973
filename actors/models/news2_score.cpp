#include "actors/models/news2_score.hpp"

#include <cmath>

namespace healthtwin::models {

double round_whole(double v) noexcept {
  return std::floor(v + 0.5);
}

double round_tenth(double v) noexcept {
  // The epsilon absorbs binary representation error (38.05 is stored as
  // 38.04999...) so that a chart value of x.x5 rounds up as a nurse would.
  return std::floor(v * 10.0 + 0.5 + 1e-7) / 10.0;
}

uint8_t score_respiration_rate(double v) noexcept {
  auto r = round_whole(v);
  if (r <= 8) return 3;
  if (r <= 11) return 1;
  if (r <= 20) return 0;
  if (r <= 24) return 2;
  return 3;
}

uint8_t score_spo2_scale1(double v) noexcept {
  auto r = round_whole(v);
  if (r <= 91) return 3;
  if (r <= 93) return 2;
  if (r <= 95) return 1;
  return 0;
}

uint8_t score_spo2_scale2(double v, bool on_oxygen) noexcept {
  auto r = round_whole(v);
  if (r <= 83) return 3;
  if (r <= 85) return 2;
  if (r <= 87) return 1;
  if (r <= 92 || !on_oxygen) return 0;  // 88-92, or >= 93 on air
  if (r <= 94) return 1;
  if (r <= 96) return 2;
  return 3;
}

uint8_t score_air_or_oxygen(bool on_oxygen) noexcept {
  return on_oxygen ? 2 : 0;
}

uint8_t score_systolic_bp(double v) noexcept {
  auto r = round_whole(v);
  if (r <= 90) return 3;
  if (r <= 100) return 2;
  if (r <= 110) return 1;
  if (r <= 219) return 0;
  return 3;
}

uint8_t score_pulse(double v) noexcept {
  auto r = round_whole(v);
  if (r <= 40) return 3;
  if (r <= 50) return 1;
  if (r <= 90) return 0;
  if (r <= 110) return 1;
  if (r <= 130) return 2;
  return 3;
}

uint8_t score_consciousness(double code) noexcept {
  // Alert scores 0; new confusion, voice, pain or unresponsive score 3.
  return round_whole(code) == static_cast<double>(acvpu::alert) ? 0 : 3;
}

uint8_t score_temperature(double v) noexcept {
  // Compare whole tenths to keep the band edges exact.
  auto tenths = std::llround(round_tenth(v) * 10.0);
  if (tenths <= 350) return 3;
  if (tenths <= 360) return 1;
  if (tenths <= 380) return 0;
  if (tenths <= 390) return 1;
  return 2;
}

news2_band band_of(uint8_t total, bool any_single_three) noexcept {
  if (total >= 7) return news2_band::high;
  if (total >= 5) return news2_band::medium;
  if (any_single_three) return news2_band::low_medium;
  return news2_band::low;
}

news2_result score_news2(const news2_inputs& in, int64_t now_ms,
                         const news2_settings& settings) noexcept {
  news2_result out;
  out.spo2_scale2 = in.spo2_scale2;
  out.time_ms = now_ms;

  // Fills the part for parameter p from observation o; returns whether the
  // observation is present and fresh.
  auto fill = [&](news2_parameter p, const std::optional<observation>& o,
                  int64_t max_age, double rounded) -> news2_part* {
    auto& part = out.parts[static_cast<size_t>(p) - 1];
    part.parameter = p;
    if (!o)
      return nullptr;
    part.missing = false;
    part.time_ms = o->time_ms;
    part.value = rounded;
    part.stale = now_ms - o->time_ms > max_age;
    return part.stale ? nullptr : &part;
  };

  auto rounded = [](const std::optional<observation>& o, bool tenth) {
    return o ? (tenth ? round_tenth(o->value) : round_whole(o->value)) : 0.0;
  };

  const auto vital_age = settings.vital_max_age_ms;
  const auto intermittent_age = settings.intermittent_max_age_ms;
  const auto obs_age = settings.observation_max_age_ms;

  if (auto* p = fill(news2_parameter::respiration_rate, in.respiration_rate, vital_age,
                     rounded(in.respiration_rate, false)))
    p->score = score_respiration_rate(p->value);

  auto* oxygen = fill(news2_parameter::air_or_oxygen, in.oxygen_flow, obs_age,
                      in.oxygen_flow ? in.oxygen_flow->value : 0.0);
  bool on_oxygen = oxygen != nullptr && oxygen->value > 0;
  if (oxygen)
    oxygen->score = score_air_or_oxygen(on_oxygen);

  // With oxygen unknown, scale 2 is scored as on air: the lower bound.
  if (auto* p = fill(news2_parameter::spo2, in.spo2, vital_age, rounded(in.spo2, false)))
    p->score = in.spo2_scale2 ? score_spo2_scale2(p->value, on_oxygen)
                              : score_spo2_scale1(p->value);

  if (auto* p = fill(news2_parameter::systolic_bp, in.systolic_bp, intermittent_age,
                     rounded(in.systolic_bp, false)))
    p->score = score_systolic_bp(p->value);

  if (auto* p = fill(news2_parameter::pulse, in.pulse, vital_age, rounded(in.pulse, false)))
    p->score = score_pulse(p->value);

  if (auto* p = fill(news2_parameter::consciousness, in.consciousness, obs_age,
                     rounded(in.consciousness, false)))
    p->score = score_consciousness(p->value);

  if (auto* p = fill(news2_parameter::temperature, in.temperature, intermittent_age,
                     rounded(in.temperature, true)))
    p->score = score_temperature(p->value);

  bool complete = true;
  bool any_three = false;
  unsigned total = 0;
  for (auto& part : out.parts) {
    complete = complete && !part.missing && !part.stale;
    any_three = any_three || part.score == 3;
    total += part.score;
  }
  out.total = static_cast<uint8_t>(total);
  out.complete = complete;
  out.band = band_of(out.total, any_three);
  return out;
}

}  // namespace healthtwin::models
