#include "actors/models/patient_model.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

namespace {

void feed_healthy(patient_model& m, int64_t t, std::vector<finding>& out) {
  m.apply(metric::respiration_rate, 16, t, "d", out);
  m.apply(metric::spo2, 97, t, "d", out);
  m.apply(metric::oxygen_flow, 0, t, "chart", out);
  m.apply(metric::systolic_bp, 120, t, "d", out);
  m.apply(metric::heart_rate, 72, t, "d", out);
  m.apply(metric::consciousness, 0, t, "chart", out);
  m.apply(metric::temperature, 36.8, t, "d", out);
}

}  // namespace

TEST(patient_model, keeps_latest_vitals_with_time_and_source) {
  patient_model m;
  std::vector<finding> out;
  m.apply(metric::heart_rate, 80, 1000, "tenants/h/devices/mon", out);
  auto& v = m.latest(metric::heart_rate);
  EXPECT_TRUE(v.present);
  EXPECT_EQ(v.value, 80);
  EXPECT_EQ(v.time_ms, 1000);
  EXPECT_EQ(v.source_device, "tenants/h/devices/mon");
  EXPECT_FALSE(m.latest(metric::spo2).present);
}

TEST(patient_model, older_reading_is_history_only) {
  patient_model m;
  std::vector<finding> out;
  m.apply(metric::spo2, 97, 2000, "d", out);
  m.apply(metric::spo2, 80, 1000, "d", out);  // late, out of order
  EXPECT_EQ(m.latest(metric::spo2).value, 97);
  EXPECT_TRUE(out.empty());
}

TEST(patient_model, complete_news2_after_all_seven_inputs) {
  patient_model m;
  std::vector<finding> out;
  feed_healthy(m, 1000, out);
  EXPECT_TRUE(m.news2().complete);
  EXPECT_EQ(m.news2().total, 0);
  EXPECT_TRUE(out.empty());
}

TEST(patient_model, deterioration_raises_threshold_and_news2_findings) {
  patient_model m;
  std::vector<finding> out;
  feed_healthy(m, 1000, out);
  m.apply(metric::respiration_rate, 26, 2000, "d", out);  // 3 -> low-medium
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, alert_kind::threshold);
  EXPECT_EQ(out[0].level, priority::medium);
  EXPECT_EQ(out[1].kind, alert_kind::news2);
  EXPECT_EQ(out[1].level, priority::low);
  out.clear();
  m.apply(metric::heart_rate, 135, 2000, "d", out);   // +3 -> 6: medium
  m.apply(metric::systolic_bp, 95, 2000, "d", out);   // +2 -> 8: high
  EXPECT_EQ(m.news2().total, 8);
  EXPECT_EQ(m.policy().news2_level(), priority::high);
}

TEST(patient_model, same_readings_give_same_state) {
  patient_model a, b;
  std::vector<finding> fa, fb;
  feed_healthy(a, 1000, fa);
  feed_healthy(b, 1000, fb);
  a.apply(metric::spo2, 84, 2000, "d", fa);
  b.apply(metric::spo2, 84, 2000, "d", fb);
  EXPECT_EQ(fa.size(), fb.size());
  EXPECT_EQ(a.news2().total, b.news2().total);
}

TEST(patient_model, scale_2_setting_rescores) {
  patient_model m;
  std::vector<finding> out;
  feed_healthy(m, 1000, out);
  m.apply(metric::spo2, 90, 1000, "d", out);
  EXPECT_EQ(m.news2().part(news2_parameter::spo2).score, 3);
  m.set_spo2_scale2(true);
  EXPECT_EQ(m.news2().part(news2_parameter::spo2).score, 0);
}
