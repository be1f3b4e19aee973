// What real bedside-monitor numerics need of the patient model (issue 25):
// frames of readings with one timestamp, minute sampling, zeros for "no
// signal", intermittent cuff pressure, two-sided thresholds.
#include "actors/models/patient_model.hpp"

#include <algorithm>
#include <random>
#include <tuple>

#include <gtest/gtest.h>

using namespace healthtwin::models;

namespace {

constexpr int64_t s = 1000;
constexpr int64_t minute = 60 * s;

std::vector<finding> of_kind(const std::vector<finding>& all, alert_kind k) {
  std::vector<finding> out;
  for (auto& f : all)
    if (f.kind == k)
      out.push_back(f);
  return out;
}

// A minute frame of a monitor: HR, RR, SpO2, temperature, with charted
// consciousness and room air (NEWS2 complete apart from BP).
std::vector<frame_reading> frame(double hr, double rr, double spo2, double temp = 37.0) {
  return {{metric::heart_rate, hr, reading_quality::unspecified, "mon"},
          {metric::respiration_rate, rr, reading_quality::unspecified, "mon"},
          {metric::spo2, spo2, reading_quality::unspecified, "mon"},
          {metric::temperature, temp, reading_quality::unspecified, "mon"},
          {metric::consciousness, 0, reading_quality::valid, "chart"},
          {metric::oxygen_flow, 0, reading_quality::valid, "chart"},
          {metric::systolic_bp, 125, reading_quality::unspecified, "cuff"}};
}

struct recorded {
  int64_t t;
  finding f;
};

// Findings of the NEWS2 kind as (time, level) pairs.
std::vector<std::pair<int64_t, priority>> news2_changes(const std::vector<recorded>& all) {
  std::vector<std::pair<int64_t, priority>> out;
  for (auto& r : all)
    if (r.f.kind == alert_kind::news2 && r.f.index == 0)
      out.emplace_back(r.t, r.f.level);
  return out;
}

}  // namespace

// NEWS2 was scored after each reading, with the other metrics' previous
// values: the alerts changed 5.6-fold with the order of metrics in a frame.
TEST(patient_model_frames, news2_is_scored_once_per_frame_whatever_the_order_of_its_readings) {
  // A patient alternating minute by minute between two frames that score
  // 0 and 7 only as wholes; any reading alone moves the score half way.
  std::vector<std::vector<frame_reading>> frames;
  std::mt19937 rng{11};
  for (int k = 0; k < 240; ++k) {
    bool sick = (k / 20) % 2 == 1;
    frames.push_back(sick ? frame(118, 26, 93, 38.5) : frame(72, 16, 97, 37.0));
  }
  std::vector<std::vector<std::pair<int64_t, priority>>> runs;
  for (int order = 0; order < 6; ++order) {
    patient_model m;
    std::vector<recorded> all;
    for (size_t k = 0; k < frames.size(); ++k) {
      auto f = frames[k];
      if (order > 0)
        std::shuffle(f.begin(), f.end(), rng);
      std::vector<finding> out;
      m.apply_frame(static_cast<int64_t>(k) * minute, f, out);
      for (auto& x : out)
        all.push_back({static_cast<int64_t>(k) * minute, x});
    }
    runs.push_back(news2_changes(all));
  }
  ASSERT_FALSE(runs[0].empty());
  for (size_t r = 1; r < runs.size(); ++r)
    EXPECT_EQ(runs[r], runs[0]) << "order " << r;
}

// Every alert, not only NEWS2: a low respiration rate is borne out by the
// SpO2 of its own frame, whichever of the two comes first.
TEST(patient_model_frames, every_alert_is_the_same_whatever_the_order_of_a_frame) {
  std::vector<std::vector<frame_reading>> frames;
  for (int k = 0; k < 120; ++k) {
    bool low = k >= 30 && k % 30 < 12;  // spells of RR 7 with SpO2 91 in the same frames
    frames.push_back(low ? frame(96, 7, 91, 37.2) : frame(74, 15, 97, 37.0));
  }
  std::mt19937 rng{5};
  std::vector<std::vector<std::tuple<int64_t, alert_kind, metric, uint8_t, priority>>> runs;
  for (int order = 0; order < 8; ++order) {
    patient_model m;
    runs.emplace_back();
    for (size_t k = 0; k < frames.size(); ++k) {
      auto f = frames[k];
      if (order == 1)
        std::reverse(f.begin(), f.end());
      else if (order > 1)
        std::shuffle(f.begin(), f.end(), rng);
      std::vector<finding> out;
      m.apply_frame(static_cast<int64_t>(k) * minute, f, out);
      for (auto& x : out)
        runs.back().emplace_back(static_cast<int64_t>(k) * minute, x.kind, x.subject, x.index, x.level);
    }
  }
  auto rr_low = std::count_if(runs[0].begin(), runs[0].end(), [](auto& x) {
    return std::get<1>(x) == alert_kind::threshold && std::get<2>(x) == metric::respiration_rate &&
           std::get<3>(x) == 1 && std::get<4>(x) != priority::none;
  });
  EXPECT_GT(rr_low, 0) << "RR 7 with SpO2 91 alarms without waiting 15 min";
  for (size_t r = 1; r < runs.size(); ++r)
    EXPECT_EQ(runs[r], runs[0]) << "order " << r;
}

// One sample a minute: an onset of 5-60 s was at most one sample.
TEST(patient_model_frames, at_one_sample_a_minute_a_single_minute_beyond_a_limit_does_not_alarm) {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 0;
  for (; t < 10 * minute; t += minute)
    m.apply_frame(t, frame(72, 16, 97), out);
  out.clear();
  // SpO2 88 for one minute, then back.
  m.apply_frame(t, frame(72, 16, 94), out);
  m.apply_frame(t += minute, frame(72, 16, 88), out);
  m.apply_frame(t += minute, frame(72, 16, 94), out);
  m.apply_frame(t += minute, frame(72, 16, 96), out);
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
  // Three minutes at 88 alarm (MEDIUM needs two samples beyond its limit).
  m.apply_frame(t += minute, frame(72, 16, 92), out);
  for (int k = 0; k < 3; ++k)
    m.apply_frame(t += minute, frame(72, 16, 88), out);
  auto th = of_kind(out, alert_kind::threshold);
  ASSERT_EQ(th.size(), 1u);
  EXPECT_EQ(th[0].level, priority::medium);
  EXPECT_EQ(th[0].index, 1);  // low
}

// An RR-high alert stayed HIGH reading "46.5 /min" while RR fell to 1-10.
TEST(patient_model_frames, high_and_low_limits_are_separate_conditions) {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 0;
  double spo2 = 97;
  auto rr = [&](double v) {
    m.apply(metric::respiration_rate, v, t, "mon", out);
    m.apply(metric::spo2, spo2, t, "mon", out);
    t += 5 * s;
  };
  for (int k = 0; k < 10; ++k)
    rr(16 + k * 0.5);
  for (double v = 21; v <= 46; v += 4)  // rising through the high limits
    for (int k = 0; k < 12; ++k)
      rr(v);
  auto high = of_kind(out, alert_kind::threshold);
  ASSERT_FALSE(high.empty());
  EXPECT_EQ(high.back().index, 0);
  EXPECT_EQ(high.back().level, priority::high);
  out.clear();
  for (double x = 96; x >= 91; --x)  // a falling saturation bears a low rate out
    for (int k = 0; k < 12; ++k)
      rr(42), spo2 = x;
  for (double v = 42; v >= 2; v -= 4)  // falling through to the low limits
    for (int k = 0; k < 12; ++k)
      rr(v);
  for (int k = 0; k < 12; ++k)
    rr(3);
  bool high_cleared = false, low_raised = false;
  for (auto& f : of_kind(out, alert_kind::threshold)) {
    high_cleared = high_cleared || (f.index == 0 && f.level == priority::none);
    low_raised = low_raised || (f.index == 1 && f.level == priority::high);
  }
  EXPECT_TRUE(high_cleared);
  EXPECT_TRUE(low_raised);
  EXPECT_EQ(m.level(alert_kind::threshold, metric::respiration_rate, 0), priority::none);
  EXPECT_EQ(m.level(alert_kind::threshold, metric::respiration_rate, 1), priority::high);
}

// Impedance RR reads low for minutes when the belt or the leads slip; RR
// <= 10 in 22 % of a stable patient's minutes dominated the alert load.
TEST(patient_model_frames, a_low_respiration_rate_nothing_bears_out_must_last_15_min) {
  auto run = [](double spo2, int minutes) {
    patient_model m;
    std::vector<finding> out;
    int64_t t = 0;
    for (; t < 60 * minute; t += minute)
      m.apply_frame(t, frame(72, 15, 97), out);
    out.clear();
    for (int k = 0; k < minutes; ++k, t += minute)
      m.apply_frame(t, frame(72, 6, spo2), out);
    return of_kind(out, alert_kind::threshold).size() + of_kind(out, alert_kind::news2).size();
  };
  EXPECT_EQ(run(97, 12), 0u);  // SpO2 fine: a 12-minute spell is the sensor
  EXPECT_GT(run(97, 20), 0u);  // 20 minutes: it alarms all the same
  EXPECT_GT(run(91, 5), 0u);   // SpO2 low too: it alarms after its usual onset
}

// A missing arterial line sent SBP 0 all day: a HIGH SBP-low alert.
TEST(patient_model_frames, zeros_are_no_signal_never_a_measurement) {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 0;
  for (; t < 60 * minute; t += minute) {
    m.apply_frame(t,
                  {{metric::systolic_bp, 0, reading_quality::unspecified, "mon"},
                   {metric::diastolic_bp, 0, reading_quality::unspecified, "mon"},
                   {metric::heart_rate, 72.0 + static_cast<double>(t / minute % 3),
                    reading_quality::unspecified, "mon"}},
                  out);
  }
  EXPECT_FALSE(m.latest(metric::systolic_bp).present);
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
  EXPECT_TRUE(of_kind(out, alert_kind::signal_quality).empty());  // never connected
  // Leads off after the ECG was there: a technical alarm, not a clinical one.
  for (int k = 0; k < 5; ++k, t += minute)
    m.apply(metric::heart_rate, 0, t, "mon", out);
  auto lost = of_kind(out, alert_kind::signal_quality);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].subject, metric::heart_rate);
  EXPECT_EQ(lost[0].index, 1);
  EXPECT_EQ(lost[0].level, priority::medium);
  EXPECT_TRUE(of_kind(out, alert_kind::threshold).empty());
  EXPECT_GT(m.latest(metric::heart_rate).value, 70);  // the zeros were not charted
  // A device that says a 0 is real is believed.
  m.apply(metric::heart_rate, 0, t, "mon", out, reading_quality::valid);
  EXPECT_EQ(effective_quality(metric::heart_rate, 0, reading_quality::valid), reading_quality::valid);
  // Signal back: the technical alarm clears.
  out.clear();
  for (int k = 0; k < 3; ++k, t += minute)
    m.apply(metric::heart_rate, 74, t, "mon", out);
  lost = of_kind(out, alert_kind::signal_quality);
  ASSERT_FALSE(lost.empty());
  EXPECT_EQ(lost.back().level, priority::none);
}

// The jump filter took a second consecutive outlier (RR 12.8 then 1.8) and
// any first value after a gap (a lone HR 11.5 inside 20 min of zeros).
TEST(patient_model_frames, the_jump_filter_judges_the_signal_not_the_previous_sample) {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 0;
  for (; t < 20 * minute; t += minute)
    m.apply(metric::respiration_rate, 13, t, "mon", out);
  m.apply(metric::respiration_rate, 1.8, t, "mon", out);
  m.apply(metric::respiration_rate, 1.8, t += minute, "mon", out);  // a second outlier
  EXPECT_EQ(m.latest(metric::respiration_rate).value, 13);
  m.apply(metric::respiration_rate, 2.0, t += minute, "mon", out);  // the third confirms
  EXPECT_EQ(m.latest(metric::respiration_rate).value, 2.0);

  patient_model hr;
  t = 0;
  for (; t < 10 * minute; t += minute)
    hr.apply(metric::heart_rate, 70, t, "mon", out);
  for (int k = 0; k < 20; ++k, t += minute)
    hr.apply(metric::heart_rate, 0, t, "mon", out);  // leads off
  hr.apply(metric::heart_rate, 11.5, t, "mon", out);
  hr.apply(metric::heart_rate, 0, t += minute, "mon", out);
  EXPECT_EQ(hr.latest(metric::heart_rate).value, 70);  // the lone value never counted
}

// NEWS2 rising was judged against a 5-minute clock grid: shifting the data
// by two minutes moved an alert's end by 23 minutes.
TEST(patient_model_frames, news2_rising_depends_on_the_data_not_on_the_clock) {
  auto run = [](int64_t shift) {
    patient_model m;
    std::vector<std::pair<int64_t, priority>> rising;
    for (int k = 0; k < 240; ++k) {
      // Two hours stable, a rise over 40 min, an hour high, then recovery.
      double x = k < 120 ? 0 : k < 160 ? (k - 120) / 40.0 : k < 200 ? 1 : 0;
      std::vector<finding> out;
      m.apply_frame(shift + k * minute, frame(72 + 30 * x, 16 + 8 * x, 97 - 3 * x), out);
      for (auto& f : out)
        if (f.kind == alert_kind::news2 && f.index == 1)
          rising.emplace_back(shift + k * minute, f.level);
    }
    return rising;
  };
  auto base = run(0);
  ASSERT_FALSE(base.empty());
  for (int64_t shift : {2 * minute, 7 * minute, 150 * s}) {
    auto shifted = run(shift);
    ASSERT_EQ(shifted.size(), base.size()) << shift;
    for (size_t i = 0; i < base.size(); ++i) {
      EXPECT_EQ(shifted[i].first - shift, base[i].first) << shift;
      EXPECT_EQ(shifted[i].second, base[i].second) << shift;
    }
  }
}

// A cuff's pressure every 10-60 min kept an alert open from one measurement
// to the next, and a single critical reading (40/18) never reached HIGH.
TEST(patient_model_frames, an_intermittent_measurement_is_judged_by_itself_and_a_critical_one_at_once) {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 0;
  for (double sbp : {125, 118, 122, 130})
    m.apply(metric::systolic_bp, sbp, t += 30 * minute, "cuff", out);
  EXPECT_TRUE(m.intermittent(metric::systolic_bp));
  out.clear();
  m.apply(metric::systolic_bp, 40, t += 30 * minute, "cuff", out);
  auto th = of_kind(out, alert_kind::threshold);
  ASSERT_EQ(th.size(), 1u);
  EXPECT_EQ(th[0].level, priority::high);
  EXPECT_EQ(th[0].index, 1);
  out.clear();
  m.apply(metric::systolic_bp, 124, t += 15 * minute, "cuff", out);
  th = of_kind(out, alert_kind::threshold);
  ASSERT_EQ(th.size(), 1u);
  EXPECT_EQ(th[0].level, priority::none);  // cleared by the next measurement
  out.clear();
  m.apply(metric::systolic_bp, 85, t += 20 * minute, "cuff", out);  // medium
  m.apply(metric::systolic_bp, 160, t += 65 * minute, "cuff", out);
  th = of_kind(out, alert_kind::threshold);
  ASSERT_EQ(th.size(), 2u);
  EXPECT_EQ(th[0].level, priority::medium);
  EXPECT_EQ(th[1].level, priority::none);
}

TEST(patient_model_frames, state_of_a_frame_survives_encoding) {
  patient_model m, copy;
  std::vector<finding> out;
  for (int k = 0; k < 90; ++k)
    m.apply_frame(k * minute, frame(72 + k % 3, 16, 97), out);
  ASSERT_TRUE(copy.decode(m.encode()));
  EXPECT_EQ(copy.encode(), m.encode());
  std::vector<finding> a, b;
  m.apply_frame(90 * minute, frame(140, 30, 88), a);
  copy.apply_frame(90 * minute, frame(140, 30, 88), b);
  EXPECT_EQ(a.size(), b.size());
}

// At one sample a second a value at a score boundary flickers: RR 24, 26,
// 24, ... scores 2, 3, 2, ... and no NEWS2 alert's onset could ever run
// 30 s. NEWS2 scores the observation — the signal's level over 30 s — and
// a reading every 30 s or slower (minute numerics, a cuff) as it is.
TEST(patient_model_frames, news2_scores_a_continuous_signal_over_30_s_and_a_slow_one_as_it_is) {
  patient_model m;
  std::vector<finding> out, all;
  int64_t t = 1'000'000;
  for (int i = 0; i < 180; ++i, t += s) {
    out.clear();
    m.apply_frame(t, frame(75, i % 2 ? 26 : 24, 97), out);
    all.insert(all.end(), out.begin(), out.end());
  }
  EXPECT_EQ(m.latest(metric::respiration_rate).value, 26);
  EXPECT_NEAR(m.observed(metric::respiration_rate), 25, 0.1);
  EXPECT_EQ(m.news2().part(news2_parameter::respiration_rate).score, 3);
  auto raised = std::count_if(all.begin(), all.end(), [](const finding& f) {
    return f.kind == alert_kind::news2 && f.index == 0 && f.what == finding::change::raised &&
           f.level == priority::low;
  });
  EXPECT_EQ(raised, 1) << "a single parameter scoring 3 for 3 min raises one LOW alert";

  // Minute numerics: the reading itself.
  patient_model slow;
  t = 1'000'000;
  for (double rr : {19.0, 19.0, 22.0}) {
    out.clear();
    slow.apply_frame(t, frame(75, rr, 97), out);
    t += minute;
  }
  EXPECT_EQ(slow.observed(metric::respiration_rate), 22);
  EXPECT_EQ(slow.news2().part(news2_parameter::respiration_rate).score, 2);

  // The observation survives a snapshot.
  patient_model copy;
  ASSERT_TRUE(copy.decode(m.encode()));
  EXPECT_EQ(copy.observed(metric::respiration_rate), m.observed(metric::respiration_rate));
}
