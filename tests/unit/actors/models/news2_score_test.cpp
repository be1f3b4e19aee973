#include "actors/models/news2_score.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

// Each test walks the band edges of one row of the RCP 2017 NEWS2 chart
// (../shared/DOMAIN.md): both sides of every boundary.

TEST(news2_score, respiration_rate_bands) {
  EXPECT_EQ(score_respiration_rate(0), 3);
  EXPECT_EQ(score_respiration_rate(8), 3);
  EXPECT_EQ(score_respiration_rate(9), 1);
  EXPECT_EQ(score_respiration_rate(11), 1);
  EXPECT_EQ(score_respiration_rate(12), 0);
  EXPECT_EQ(score_respiration_rate(20), 0);
  EXPECT_EQ(score_respiration_rate(21), 2);
  EXPECT_EQ(score_respiration_rate(24), 2);
  EXPECT_EQ(score_respiration_rate(25), 3);
  EXPECT_EQ(score_respiration_rate(60), 3);
}

TEST(news2_score, respiration_rate_rounds_half_up_before_banding) {
  EXPECT_EQ(score_respiration_rate(8.4), 3);
  EXPECT_EQ(score_respiration_rate(8.5), 1);
  EXPECT_EQ(score_respiration_rate(20.49), 0);
  EXPECT_EQ(score_respiration_rate(20.5), 2);
}

TEST(news2_score, spo2_scale_1_bands) {
  EXPECT_EQ(score_spo2_scale1(70), 3);
  EXPECT_EQ(score_spo2_scale1(91), 3);
  EXPECT_EQ(score_spo2_scale1(92), 2);
  EXPECT_EQ(score_spo2_scale1(93), 2);
  EXPECT_EQ(score_spo2_scale1(94), 1);
  EXPECT_EQ(score_spo2_scale1(95), 1);
  EXPECT_EQ(score_spo2_scale1(96), 0);
  EXPECT_EQ(score_spo2_scale1(100), 0);
  EXPECT_EQ(score_spo2_scale1(95.5), 0);  // rounds to 96
}

TEST(news2_score, spo2_scale_2_bands_on_air) {
  EXPECT_EQ(score_spo2_scale2(83, false), 3);
  EXPECT_EQ(score_spo2_scale2(84, false), 2);
  EXPECT_EQ(score_spo2_scale2(85, false), 2);
  EXPECT_EQ(score_spo2_scale2(86, false), 1);
  EXPECT_EQ(score_spo2_scale2(87, false), 1);
  EXPECT_EQ(score_spo2_scale2(88, false), 0);
  EXPECT_EQ(score_spo2_scale2(92, false), 0);
  EXPECT_EQ(score_spo2_scale2(93, false), 0);
  EXPECT_EQ(score_spo2_scale2(100, false), 0);
}

TEST(news2_score, spo2_scale_2_scores_high_saturation_on_oxygen) {
  EXPECT_EQ(score_spo2_scale2(83, true), 3);
  EXPECT_EQ(score_spo2_scale2(87, true), 1);
  EXPECT_EQ(score_spo2_scale2(88, true), 0);
  EXPECT_EQ(score_spo2_scale2(92, true), 0);
  EXPECT_EQ(score_spo2_scale2(93, true), 1);
  EXPECT_EQ(score_spo2_scale2(94, true), 1);
  EXPECT_EQ(score_spo2_scale2(95, true), 2);
  EXPECT_EQ(score_spo2_scale2(96, true), 2);
  EXPECT_EQ(score_spo2_scale2(97, true), 3);
  EXPECT_EQ(score_spo2_scale2(100, true), 3);
}

TEST(news2_score, air_scores_zero_and_oxygen_two) {
  EXPECT_EQ(score_air_or_oxygen(false), 0);
  EXPECT_EQ(score_air_or_oxygen(true), 2);
}

TEST(news2_score, systolic_bp_bands) {
  EXPECT_EQ(score_systolic_bp(50), 3);
  EXPECT_EQ(score_systolic_bp(90), 3);
  EXPECT_EQ(score_systolic_bp(91), 2);
  EXPECT_EQ(score_systolic_bp(100), 2);
  EXPECT_EQ(score_systolic_bp(101), 1);
  EXPECT_EQ(score_systolic_bp(110), 1);
  EXPECT_EQ(score_systolic_bp(111), 0);
  EXPECT_EQ(score_systolic_bp(219), 0);
  EXPECT_EQ(score_systolic_bp(220), 3);
  EXPECT_EQ(score_systolic_bp(219.5), 3);  // rounds to 220
}

TEST(news2_score, pulse_bands) {
  EXPECT_EQ(score_pulse(30), 3);
  EXPECT_EQ(score_pulse(40), 3);
  EXPECT_EQ(score_pulse(41), 1);
  EXPECT_EQ(score_pulse(50), 1);
  EXPECT_EQ(score_pulse(51), 0);
  EXPECT_EQ(score_pulse(90), 0);
  EXPECT_EQ(score_pulse(91), 1);
  EXPECT_EQ(score_pulse(110), 1);
  EXPECT_EQ(score_pulse(111), 2);
  EXPECT_EQ(score_pulse(130), 2);
  EXPECT_EQ(score_pulse(131), 3);
  EXPECT_EQ(score_pulse(200), 3);
}

TEST(news2_score, consciousness_alert_scores_zero_anything_else_three) {
  EXPECT_EQ(score_consciousness(static_cast<double>(acvpu::alert)), 0);
  EXPECT_EQ(score_consciousness(static_cast<double>(acvpu::confusion)), 3);
  EXPECT_EQ(score_consciousness(static_cast<double>(acvpu::voice)), 3);
  EXPECT_EQ(score_consciousness(static_cast<double>(acvpu::pain)), 3);
  EXPECT_EQ(score_consciousness(static_cast<double>(acvpu::unresponsive)), 3);
}

TEST(news2_score, temperature_bands_at_one_decimal) {
  EXPECT_EQ(score_temperature(33.0), 3);
  EXPECT_EQ(score_temperature(35.0), 3);
  EXPECT_EQ(score_temperature(35.1), 1);
  EXPECT_EQ(score_temperature(36.0), 1);
  EXPECT_EQ(score_temperature(36.1), 0);
  EXPECT_EQ(score_temperature(38.0), 0);
  EXPECT_EQ(score_temperature(38.1), 1);
  EXPECT_EQ(score_temperature(39.0), 1);
  EXPECT_EQ(score_temperature(39.1), 2);
  EXPECT_EQ(score_temperature(41.0), 2);
}

TEST(news2_score, temperature_rounds_to_a_tenth_half_up) {
  EXPECT_EQ(score_temperature(35.04), 3);  // 35.0
  EXPECT_EQ(score_temperature(35.05), 1);  // 35.1
  EXPECT_EQ(score_temperature(38.04), 0);  // 38.0
  EXPECT_EQ(score_temperature(38.05), 1);  // 38.1 despite binary 38.0499...
  EXPECT_DOUBLE_EQ(round_tenth(36.95), 37.0);
}

TEST(news2_score, bands_follow_total_and_single_three) {
  EXPECT_EQ(band_of(0, false), news2_band::low);
  EXPECT_EQ(band_of(4, false), news2_band::low);
  EXPECT_EQ(band_of(3, true), news2_band::low_medium);
  EXPECT_EQ(band_of(4, true), news2_band::low_medium);
  EXPECT_EQ(band_of(5, false), news2_band::medium);
  EXPECT_EQ(band_of(6, true), news2_band::medium);
  EXPECT_EQ(band_of(7, false), news2_band::high);
  EXPECT_EQ(band_of(20, true), news2_band::high);
}

namespace {

news2_inputs healthy(int64_t t) {
  news2_inputs in;
  in.respiration_rate = observation{16, t};
  in.spo2 = observation{97, t};
  in.oxygen_flow = observation{0, t};
  in.systolic_bp = observation{120, t};
  in.pulse = observation{72, t};
  in.consciousness = observation{0, t};
  in.temperature = observation{36.8, t};
  return in;
}

}  // namespace

TEST(news2_score, healthy_adult_scores_zero_and_complete) {
  auto r = score_news2(healthy(1000), 1000);
  EXPECT_EQ(r.total, 0);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.band, news2_band::low);
  for (auto& p : r.parts) {
    EXPECT_FALSE(p.missing);
    EXPECT_FALSE(p.stale);
  }
}

TEST(news2_score, sums_every_parameter) {
  auto in = healthy(1000);
  in.respiration_rate->value = 26;  // 3
  in.spo2->value = 93;              // 2 (scale 1)
  in.oxygen_flow->value = 2;        // 2
  in.systolic_bp->value = 95;       // 2
  in.pulse->value = 115;            // 2
  in.consciousness->value = 2;      // 3 (voice)
  in.temperature->value = 39.5;     // 2
  auto r = score_news2(in, 1000);
  EXPECT_EQ(r.total, 16);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.band, news2_band::high);
  EXPECT_EQ(r.part(news2_parameter::air_or_oxygen).score, 2);
  EXPECT_EQ(r.part(news2_parameter::consciousness).score, 3);
}

TEST(news2_score, single_red_parameter_gives_low_medium) {
  auto in = healthy(1000);
  in.systolic_bp->value = 88;  // 3
  auto r = score_news2(in, 1000);
  EXPECT_EQ(r.total, 3);
  EXPECT_EQ(r.band, news2_band::low_medium);
}

TEST(news2_score, scale_2_patient_on_oxygen_uses_scale_2) {
  auto in = healthy(1000);
  in.spo2_scale2 = true;
  in.spo2->value = 97;
  in.oxygen_flow->value = 1;
  auto r = score_news2(in, 1000);
  EXPECT_EQ(r.part(news2_parameter::spo2).score, 3);
  EXPECT_EQ(r.part(news2_parameter::air_or_oxygen).score, 2);
  EXPECT_TRUE(r.spo2_scale2);
  in.spo2->value = 90;
  EXPECT_EQ(score_news2(in, 1000).part(news2_parameter::spo2).score, 0);
}

TEST(news2_score, missing_parameters_are_named_and_make_it_incomplete) {
  auto in = healthy(1000);
  in.consciousness.reset();
  in.oxygen_flow.reset();
  auto r = score_news2(in, 1000);
  EXPECT_FALSE(r.complete);
  EXPECT_TRUE(r.part(news2_parameter::consciousness).missing);
  EXPECT_TRUE(r.part(news2_parameter::air_or_oxygen).missing);
  EXPECT_FALSE(r.part(news2_parameter::pulse).missing);
}

TEST(news2_score, old_vitals_are_stale_and_do_not_count) {
  news2_settings s;
  auto in = healthy(0);
  in.pulse = observation{140, 0};  // would score 3
  auto now = s.vital_max_age_ms + 1;
  in.respiration_rate->time_ms = now;
  auto r = score_news2(in, now, s);
  EXPECT_FALSE(r.complete);
  EXPECT_TRUE(r.part(news2_parameter::pulse).stale);
  EXPECT_EQ(r.part(news2_parameter::pulse).score, 0);
  EXPECT_FALSE(r.part(news2_parameter::respiration_rate).stale);
  // Charted observations keep longer.
  EXPECT_FALSE(r.part(news2_parameter::consciousness).stale);
}

TEST(news2_score, partial_total_is_a_lower_bound_for_the_band) {
  news2_inputs in;
  in.respiration_rate = observation{30, 0};  // 3
  in.pulse = observation{135, 0};            // 3
  in.systolic_bp = observation{95, 0};       // 2
  auto r = score_news2(in, 0);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.total, 8);
  EXPECT_EQ(r.band, news2_band::high);
}
