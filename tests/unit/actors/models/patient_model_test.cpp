#include "actors/models/patient_model.hpp"

#include <random>

#include <gtest/gtest.h>

using namespace healthtwin::models;
using change = finding::change;

namespace {

constexpr int64_t s = 1000;  // one second of data time

// Seven healthy NEWS2 inputs at time t, one frame 5 s earlier confirming
// the continuous signals (a first reading waits for a second, consistent one).
void healthy(patient_model& m, int64_t t, std::vector<finding>& out) {
  for (auto at : {t - 5 * s, t})
    m.apply_frame(at,
                  {{metric::respiration_rate, 16, reading_quality::valid, "mon"},
                   {metric::spo2, 97, reading_quality::valid, "mon"},
                   {metric::oxygen_flow, 0, reading_quality::valid, "chart"},
                   {metric::systolic_bp, 120, reading_quality::valid, "mon"},
                   {metric::heart_rate, 72, reading_quality::valid, "mon"},
                   {metric::consciousness, 0, reading_quality::valid, "chart"},
                   {metric::temperature, 36.8, reading_quality::valid, "mon"}},
                  out);
}

std::vector<finding> of_kind(const std::vector<finding>& all, alert_kind k) {
  std::vector<finding> out;
  for (auto& f : all)
    if (f.kind == k)
      out.push_back(f);
  return out;
}

}  // namespace

TEST(patient_model, keeps_latest_vitals_with_time_and_source) {
  patient_model m;
  std::vector<finding> out;
  m.apply(metric::heart_rate, 81, 0, "tenants/h/devices/mon", out);
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
  m.apply(metric::spo2, 97, 1500, "d", out);
  m.apply(metric::spo2, 97, 2000, "d", out);
  m.apply(metric::spo2, 80, 1000, "d", out);
  EXPECT_EQ(m.latest(metric::spo2).value, 97);
  EXPECT_TRUE(out.empty());
}

TEST(patient_model, a_threshold_alarm_needs_its_condition_delay) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  // A gradual fall passes the jump filter; <= 90 is medium after 15 s.
  for (int64_t t = 30, v = 96; v >= 90; t += 30, --v)
    m.apply(metric::spo2, static_cast<double>(v), t * s, "mon", out);  // 90 at 210 s
  m.apply(metric::spo2, 89, 220 * s, "mon", out);
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
  m.apply(metric::spo2, 89, 225 * s, "mon", out);
  auto t = of_kind(out, alert_kind::threshold);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].subject, metric::spo2);
  EXPECT_EQ(t[0].level, priority::medium);
  EXPECT_EQ(t[0].what, change::raised);
  EXPECT_EQ(t[0].device, "mon");
}

// Held back until it lasted 45 s; then it counts from its start, so its
// 15 s onset has passed and it alarms at once.
TEST(patient_model, a_sudden_change_is_held_back_until_it_lasts_45_s_then_alarms_from_its_start) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  for (int64_t t = 10; t <= 50; t += 5)
    m.apply(metric::spo2, 89, t * s, "mon", out);
  EXPECT_EQ(m.latest(metric::spo2).value, 97);  // held
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
  m.apply(metric::spo2, 89, 55 * s, "mon", out);  // confirmed: 45 s since 10 s
  EXPECT_EQ(m.latest(metric::spo2).value, 89);
  auto t = of_kind(out, alert_kind::threshold);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].level, priority::medium);
}

TEST(patient_model, a_spike_never_reaches_the_models) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  m.apply(metric::heart_rate, 190, 5 * s, "mon", out);
  EXPECT_EQ(m.latest(metric::heart_rate).value, 72);
  EXPECT_EQ(m.news2().total, 0);
  m.apply(metric::heart_rate, 73, 10 * s, "mon", out);
  EXPECT_EQ(m.latest(metric::heart_rate).value, 73);
  EXPECT_TRUE(out.empty());
  // A second jump starts its own confirmation, and alarms only once confirmed.
  m.apply(metric::heart_rate, 150, 15 * s, "mon", out);
  m.apply(metric::heart_rate, 150, 55 * s, "mon", out);
  EXPECT_EQ(m.latest(metric::heart_rate).value, 73);
  EXPECT_TRUE(out.empty());
  m.apply(metric::heart_rate, 150, 60 * s, "mon", out);
  EXPECT_EQ(m.latest(metric::heart_rate).value, 150);
  ASSERT_FALSE(of_kind(out, alert_kind::threshold).empty());
  EXPECT_EQ(of_kind(out, alert_kind::threshold)[0].level, priority::high);
}

TEST(patient_model, a_motion_artefact_shorter_than_the_delay_never_alarms) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  m.apply(metric::spo2, 84, 5 * s, "mon", out);
  m.apply(metric::spo2, 86, 8 * s, "mon", out);
  m.apply(metric::spo2, 97, 11 * s, "mon", out);
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
}

TEST(patient_model, threshold_alarm_clears_after_hysteresis_and_hold) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  for (int64_t t = 5; t <= 80; t += 5)  // sudden: confirmed at 50 s, HIGH at 55 s
    m.apply(metric::heart_rate, 155, t * s, "mon", out);
  ASSERT_FALSE(of_kind(out, alert_kind::threshold).empty());
  ASSERT_EQ(of_kind(out, alert_kind::threshold).back().level, priority::high);
  out.clear();
  for (int64_t t = 85; t <= 150; t += 5)
    m.apply(metric::heart_rate, 146, t * s, "mon", out);  // within 5 of 150: stays high
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
  for (int64_t t = 155; t <= 300; t += 5)  // confirmed at 200 s, cleared 30 s later
    m.apply(metric::heart_rate, 80, t * s, "mon", out);
  auto t = of_kind(out, alert_kind::threshold);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].what, change::cleared);
}

TEST(patient_model, per_patient_limits_replace_the_defaults) {
  patient_model m;
  patient_settings ps;
  ps.limits[static_cast<size_t>(metric::spo2)] = threshold_limits{80, 84, std::nullopt, std::nullopt, 2};
  m.configure(ps);  // a COPD patient whose normal is 86-88 %
  std::vector<finding> out;
  for (int64_t t = 0; t <= 60; t += 5)
    m.apply(metric::spo2, 87, t * s, "mon", out);
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
}

TEST(patient_model, news2_alert_follows_the_band_with_a_delay) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  for (int64_t t = 5; t <= 120; t += 5) {  // sudden: held back 45 s, then 30 s delay
    m.apply(metric::respiration_rate, 26, t * s, "mon", out);  // 3
    m.apply(metric::heart_rate, 135, t * s, "mon", out);       // 3
    m.apply(metric::systolic_bp, 95, t * s, "mon", out);       // 2
  }
  EXPECT_EQ(m.news2().total, 8);
  auto n = of_kind(out, alert_kind::news2);
  ASSERT_FALSE(n.empty());
  EXPECT_EQ(n.back().level, priority::high);
  EXPECT_EQ(n.back().value, 8);
}

TEST(patient_model, news2_history_records_changes_and_their_delta) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  // After a gap a value needs a second one to confirm it.
  m.apply(metric::heart_rate, 95, 30 * 60 * s, "mon", out);  // +1
  m.apply(metric::heart_rate, 95, 30 * 60 * s + 5 * s, "mon", out);
  m.apply(metric::heart_rate, 115, 60 * 60 * s, "mon", out);  // 2
  m.apply(metric::heart_rate, 115, 60 * 60 * s + 5 * s, "mon", out);
  auto h = m.news2_history();
  ASSERT_GE(h.size(), 3u);
  EXPECT_EQ(h.back().total, 2);
  // Against the lowest total within 5 min of the time asked about.
  EXPECT_EQ(m.news2_change(28 * 60 * s), 1);  // from 1 at 30 min
  EXPECT_EQ(m.news2_change(60 * 60 * s), 2);  // from 0 at 0 min
  EXPECT_EQ(m.news2_change(45 * 60 * s), std::nullopt);  // no data around 15 min
  EXPECT_EQ(m.news2_change(90 * 60 * s), std::nullopt);
}

TEST(patient_model, baseline_anomaly_after_warm_up_and_minimum_duration) {
  patient_model m;
  std::vector<finding> out;
  std::mt19937 rng{7};
  std::normal_distribution<double> noise{0, 1.5};
  int64_t t = 0;
  for (; t < 2 * 3600 * s; t += 5 * s)
    m.apply(metric::heart_rate, std::round(62 + noise(rng)), t, "mon", out);
  EXPECT_TRUE(of_kind(out, alert_kind::baseline_anomaly).empty());
  // 88 /min: within population limits, but far from this patient's 62.
  auto start = t;
  for (; t < start + 4 * 60 * s; t += 5 * s)
    m.apply(metric::heart_rate, 88, t, "mon", out);
  EXPECT_TRUE(of_kind(out, alert_kind::baseline_anomaly).empty());  // < 5 min
  for (; t < start + 6 * 60 * s; t += 5 * s)
    m.apply(metric::heart_rate, 88, t, "mon", out);
  auto b = of_kind(out, alert_kind::baseline_anomaly);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].level, priority::low);
  EXPECT_GT(b[0].detail, 4);
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
}

TEST(patient_model, trend_forecast_predicts_falling_spo2_and_retracts_when_it_turns) {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 0;
  for (; t < 20 * 60 * s; t += 5 * s)
    m.apply(metric::spo2, 97, t, "mon", out);
  // 97 falling 0.3 %/min: 90 in ~23 min; alarm within the 15 min horizon.
  double v = 97;
  for (; v > 92.5; t += 5 * s) {
    v -= 0.3 * 5 / 60;
    m.apply(metric::spo2, v, t, "mon", out);
  }
  auto tf = of_kind(out, alert_kind::trend_forecast);
  ASSERT_EQ(tf.size(), 1u);
  EXPECT_EQ(tf[0].what, change::raised);
  EXPECT_EQ(tf[0].level, priority::medium);
  EXPECT_EQ(tf[0].subject, metric::spo2);
  EXPECT_GT(tf[0].predicted_ms, tf[0].predicted_ms - 1);
  EXPECT_LT(tf[0].detail, 0);  // slope
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());  // still above 90
  out.clear();
  for (int i = 0; i < 120; ++i, t += 5 * s)
    m.apply(metric::spo2, 96, t, "mon", out);  // recovered
  tf = of_kind(out, alert_kind::trend_forecast);
  ASSERT_EQ(tf.size(), 1u);
  EXPECT_EQ(tf[0].what, change::cleared);
}

TEST(patient_model, probe_off_is_a_technical_alarm_and_kept_out_of_the_clinical_models) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  for (int64_t t = 5; t <= 30; t += 5)
    m.apply(metric::spo2, 25, t * s, "ox", out);
  EXPECT_EQ(m.latest(metric::spo2).value, 97);  // not scored
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
  EXPECT_TRUE(of_kind(out, alert_kind::news2).empty());
  auto q = of_kind(out, alert_kind::signal_quality);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].level, priority::medium);
  EXPECT_EQ(q[0].index, 0);
  EXPECT_EQ(q[0].device, "ox");
}

TEST(patient_model, a_frozen_heart_rate_is_reported) {
  patient_model m;
  std::vector<finding> out;
  for (int64_t t = 0; t <= 4 * 60; t += 5)
    m.apply(metric::heart_rate, 72, t * s, "mon", out);
  auto q = of_kind(out, alert_kind::signal_quality);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].subject, metric::heart_rate);
  EXPECT_EQ(q[0].level, priority::low);
}

TEST(patient_model, same_readings_give_same_findings_and_state_survives_encoding) {
  std::mt19937 rng{3};
  std::normal_distribution<double> noise{0, 2};
  patient_model a, b;
  std::vector<finding> fa, fb;
  int64_t t = 0;
  for (; t < 3600 * s; t += 5 * s) {
    double hr = std::round(72 + noise(rng) + (t > 3000 * s ? 50 : 0));
    a.apply(metric::heart_rate, hr, t, "mon", fa);
    b.apply(metric::heart_rate, hr, t, "mon", fb);
  }
  ASSERT_EQ(fa.size(), fb.size());
  for (size_t i = 0; i < fa.size(); ++i) {
    EXPECT_EQ(fa[i].kind, fb[i].kind);
    EXPECT_EQ(fa[i].level, fb[i].level);
  }
  // A model restored from its encoding continues exactly as the original.
  patient_model c;
  ASSERT_TRUE(c.decode(a.encode()));
  EXPECT_EQ(c.encode(), a.encode());
  std::vector<finding> fa2, fc;
  for (int i = 0; i < 200; ++i, t += 5 * s) {
    a.apply(metric::heart_rate, 75, t, "mon", fa2);
    c.apply(metric::heart_rate, 75, t, "mon", fc);
  }
  EXPECT_EQ(fa2.size(), fc.size());
  EXPECT_EQ(a.encode(), c.encode());
}

TEST(patient_model, malformed_state_is_refused) {
  patient_model m;
  std::vector<finding> out;
  healthy(m, 0, out);
  auto bytes = m.encode();
  patient_model r;
  EXPECT_FALSE(r.decode(""));
  EXPECT_FALSE(r.decode(bytes.substr(0, bytes.size() / 2)));
  EXPECT_FALSE(r.decode(bytes + "x"));
  EXPECT_FALSE(r.decode(std::string(1, '\x09') + bytes.substr(1)));  // unknown version
  EXPECT_TRUE(r.decode(bytes));
}

TEST(patient_model, settings_are_validated_naming_the_field) {
  patient_settings ok;
  EXPECT_FALSE(ok.validate());
  auto bad = ok;
  bad.baseline_k = 0.5;
  EXPECT_EQ(bad.validate(), std::string{"baseline_k"});
  bad = ok;
  bad.limits[static_cast<size_t>(metric::heart_rate)] = threshold_limits{60, 50, 100, 120, 5};
  EXPECT_EQ(bad.validate(), std::string{"limits.heart_rate"});
  bad = ok;
  bad.limits[static_cast<size_t>(metric::spo2)] = threshold_limits{std::nullopt, 120, std::nullopt, std::nullopt, 1};
  EXPECT_EQ(bad.validate(), std::string{"limits.spo2"});
  bad = ok;
  bad.forecast_horizon_ms = 0;
  EXPECT_EQ(bad.validate(), std::string{"forecast_horizon_ms"});
  bad = ok;
  bad.device_offline_after_ms = 1;
  EXPECT_EQ(bad.validate(), std::string{"device_offline_after_ms"});
}

TEST(patient_model, scale_2_setting_rescores) {
  patient_model m;
  std::vector<finding> out;
  m.apply(metric::spo2, 90, 1000, "d", out);  // a first reading waits for a second
  m.apply(metric::spo2, 90, 2000, "d", out);
  EXPECT_EQ(m.news2().part(news2_parameter::spo2).score, 3);
  patient_settings ps;
  ps.spo2_scale2 = true;
  m.configure(ps);
  EXPECT_EQ(m.news2().part(news2_parameter::spo2).score, 0);
}

TEST(patient_model, news2_rising_by_2_within_an_hour_raises_a_low_alert_below_the_bands) {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 0;
  for (; t <= 60 * 60 * s; t += 60 * s)
    healthy(m, t, out);
  EXPECT_TRUE(of_kind(out, alert_kind::news2).empty());
  // Over 10 min: RR 16 -> 22 (2 points), HR 72 -> 95 (1 point): NEWS2 3, low band.
  int64_t reached = -1, alerted = -1;
  for (int k = 1; k <= 20; ++k, t += 60 * s) {
    m.apply(metric::respiration_rate, std::min(22.0, 16 + 0.6 * k), t, "mon", out);
    m.apply(metric::heart_rate, std::min(95.0, 72 + 2.3 * k), t, "mon", out);
    if (reached < 0 && m.news2().total >= news2_rise_points)
      reached = t;
    if (alerted < 0 && !of_kind(out, alert_kind::news2).empty())
      alerted = t;
  }
  EXPECT_EQ(m.news2().total, 3);
  EXPECT_EQ(m.news2().band, news2_band::low);
  ASSERT_GE(reached, 0);
  ASSERT_GE(alerted, 0);
  EXPECT_GE(alerted - reached, 5 * 60 * s);  // its minimum duration
  EXPECT_LE(alerted - reached, 6 * 60 * s);
  auto n = of_kind(out, alert_kind::news2);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].index, 1);
  EXPECT_EQ(n[0].level, priority::low);
  EXPECT_GE(n[0].detail, news2_rise_points);  // the change when it was raised
  EXPECT_EQ(m.level(alert_kind::news2, metric{}, 1), priority::low);
  EXPECT_EQ(m.level(alert_kind::news2, metric{}, 0), priority::none);
  // It survives a snapshot.
  patient_model copy;
  ASSERT_TRUE(copy.decode(m.encode()));
  EXPECT_EQ(copy.level(alert_kind::news2, metric{}, 1), priority::low);
  EXPECT_EQ(copy.news2_history().size(), m.news2_history().size());
}

TEST(patient_model, incremental_news2_equals_a_full_rescore_on_a_noisy_stream) {
  for (bool scale2 : {false, true}) {
    patient_model m;
    patient_settings ps;
    ps.spo2_scale2 = scale2;
    m.configure(ps);
    std::mt19937 rng{11};
    std::normal_distribution<double> n{0, 1};
    std::vector<finding> out;
    const metric inputs[] = {metric::respiration_rate, metric::spo2,       metric::heart_rate,
                             metric::temperature,      metric::systolic_bp, metric::oxygen_flow,
                             metric::consciousness};
    for (int i = 0; i < 20'000; ++i) {
      auto mt = inputs[i % 7 < 5 ? i % 5 : 5 + (i / 7) % 2];
      int64_t t = i * 700 + (i % 97 == 0 ? 20 * 60'000 : 0);  // some inputs turn stale
      double v = 0;
      switch (mt) {
        case metric::respiration_rate: v = 20 + 4 * n(rng); break;
        case metric::spo2: v = 93 + 3 * n(rng); break;
        case metric::heart_rate: v = 95 + 15 * n(rng); break;
        case metric::temperature: v = 37.5 + 0.8 * n(rng); break;
        case metric::systolic_bp: v = 105 + 15 * n(rng); break;
        case metric::oxygen_flow: v = n(rng) > 0 ? 2 : 0; break;
        default: v = n(rng) > 1.5 ? 1 : 0; break;
      }
      if (i % 50 == 0 && mt != metric::consciousness && mt != metric::oxygen_flow)
        continue;  // leave gaps
      out.clear();
      m.apply(mt, v, t, "mon", out);
      news2_inputs in;
      auto take = [&](metric x) -> std::optional<observation> {
        auto& l = m.latest(x);
        return l.present ? std::optional<observation>{observation{m.observed(x), l.time_ms}}
                         : std::nullopt;
      };
      in.respiration_rate = take(metric::respiration_rate);
      in.spo2 = take(metric::spo2);
      in.oxygen_flow = take(metric::oxygen_flow);
      in.systolic_bp = take(metric::systolic_bp);
      in.pulse = take(metric::heart_rate);
      in.consciousness = take(metric::consciousness);
      in.temperature = take(metric::temperature);
      in.spo2_scale2 = scale2;
      auto full = score_news2(in, m.news2().time_ms);
      ASSERT_EQ(m.news2().total, full.total) << i;
      ASSERT_EQ(m.news2().band, full.band) << i;
      ASSERT_EQ(m.news2().complete, full.complete) << i;
      for (size_t p = 0; p < full.parts.size(); ++p) {
        ASSERT_EQ(m.news2().parts[p].score, full.parts[p].score) << i << " part " << p;
        ASSERT_EQ(m.news2().parts[p].time_ms, full.parts[p].time_ms) << i << " part " << p;
      }
    }
  }
}
