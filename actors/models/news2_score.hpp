#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "actors/models/metric.hpp"

namespace healthtwin::models {

/// The seven NEWS2 parameters (Royal College of Physicians, 2017). Numbers
/// equal healthtwin.v1.News2Parameter.
enum class news2_parameter : uint8_t {
  respiration_rate = 1,
  spo2 = 2,
  air_or_oxygen = 3,
  systolic_bp = 4,
  pulse = 5,
  consciousness = 6,
  temperature = 7,
};

inline constexpr size_t news2_parameter_count = 7;

/// Clinical response bands. Numbers equal healthtwin.v1.News2Band.
enum class news2_band : uint8_t {
  low = 1,         ///< 0-4 and no single parameter scoring 3
  low_medium = 2,  ///< a single parameter scoring 3, total below 5
  medium = 3,      ///< 5-6
  high = 4,        ///< 7 or more
};

/// One timed observation.
struct observation {
  double value = 0;
  int64_t time_ms = 0;
};

/// What NEWS2 is computed from: the latest value of each input, if any.
struct news2_inputs {
  std::optional<observation> respiration_rate;
  std::optional<observation> spo2;
  std::optional<observation> oxygen_flow;  ///< L/min; > 0 means supplemental oxygen
  std::optional<observation> systolic_bp;
  std::optional<observation> pulse;
  std::optional<observation> consciousness;  ///< ACVPU code
  std::optional<observation> temperature;
  bool spo2_scale2 = false;  ///< per-patient clinical setting
};

/// How old an input may be before it no longer counts.
struct news2_settings {
  /// Continuously measured vitals (RR, SpO2, pulse). Default 15 min.
  int64_t vital_max_age_ms = 15 * 60 * 1000;
  /// Vitals measured from time to time (systolic BP from a cuff every
  /// 15-60 min, temperature): the chart keeps the last one. Default 4 h.
  int64_t intermittent_max_age_ms = 4 * 3600 * 1000;
  /// Charted observations (consciousness, air or oxygen). Default 12 h.
  int64_t observation_max_age_ms = 12 * 3600 * 1000;
};

struct news2_part {
  news2_parameter parameter{};
  uint8_t score = 0;     ///< 0 when missing or stale
  double value = 0;      ///< rounded to chart precision
  int64_t time_ms = 0;
  bool missing = true;   ///< never observed
  bool stale = false;    ///< older than its max age at `now`
};

struct news2_result {
  /// Sum of the present, fresh parts: a lower bound when !complete.
  uint8_t total = 0;
  bool complete = false;
  news2_band band = news2_band::low;
  bool spo2_scale2 = false;
  std::array<news2_part, news2_parameter_count> parts{};  ///< index = parameter - 1
  int64_t time_ms = 0;

  const news2_part& part(news2_parameter p) const noexcept {
    return parts[static_cast<size_t>(p) - 1];
  }
};

/// Scores NEWS2 at time `now_ms` (the newest input time, so the result is
/// the same when the readings are replayed). Missing or stale inputs score 0
/// and make the result incomplete; the band is then a lower bound.
news2_result score_news2(const news2_inputs& in, int64_t now_ms,
                         const news2_settings& settings = {}) noexcept;

/// Band of a total and whether any single parameter scored 3.
news2_band band_of(uint8_t total, bool any_single_three) noexcept;

// Single-parameter scores on already measured values. Values are rounded
// to the chart's precision first (whole numbers; 0.1 degC), half up.
uint8_t score_respiration_rate(double per_min) noexcept;
uint8_t score_spo2_scale1(double percent) noexcept;
uint8_t score_spo2_scale2(double percent, bool on_oxygen) noexcept;
uint8_t score_air_or_oxygen(bool on_oxygen) noexcept;
uint8_t score_systolic_bp(double mmhg) noexcept;
uint8_t score_pulse(double per_min) noexcept;
uint8_t score_consciousness(double acvpu_code) noexcept;
uint8_t score_temperature(double celsius) noexcept;

/// Rounding used before banding: whole numbers, half up.
double round_whole(double v) noexcept;
/// Rounding used before banding temperature: one decimal, half up.
double round_tenth(double v) noexcept;

}  // namespace healthtwin::models
