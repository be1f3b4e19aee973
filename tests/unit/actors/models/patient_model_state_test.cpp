// The patient model's snapshot state: what it keeps per metric, its bytes,
// and copies.
#include "actors/models/patient_model.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

namespace {

constexpr int64_t s = 1000;

// FNV-1a over the bytes: a short fingerprint of an encoding.
uint64_t fingerprint(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Heart rate and SpO2 for 40 min (warm-up over, a jump held and confirmed),
// and a respiration channel that reports no signal.
patient_model two_metrics() {
  patient_model m;
  std::vector<finding> out;
  int64_t t = 1'000'000;
  for (int i = 0; i < 480; ++i, t += 5 * s) {
    double hr = i < 300 ? 70 + (i % 5) : 118 + (i % 3);
    m.apply_frame(t,
                  {{metric::heart_rate, hr, reading_quality::valid, "mon-1"},
                   {metric::spo2, 96.0 - (i % 2), reading_quality::valid, "mon-1"},
                   {metric::respiration_rate, 0, reading_quality::no_signal, "mon-1"}},
                  out);
  }
  return m;
}

}  // namespace

TEST(patient_model_state, the_snapshot_bytes_are_those_of_version_4) {
  // Fingerprint of the encoding written before the model kept state only
  // for metrics with readings: the format is unchanged.
  auto bytes = two_metrics().encode();
  EXPECT_EQ(bytes.size(), 6344u);
  EXPECT_EQ(fingerprint(bytes), 3235768660940576344ull);
  EXPECT_EQ(fingerprint(patient_model{}.encode()), 9905905623767078575ull);
}

TEST(patient_model_state, a_restored_model_equals_the_original_and_copies_are_independent) {
  auto m = two_metrics();
  auto bytes = m.encode();
  patient_model r;
  ASSERT_TRUE(r.decode(bytes));
  EXPECT_EQ(r.encode(), bytes);
  EXPECT_EQ(r.latest(metric::heart_rate).value, m.latest(metric::heart_rate).value);
  EXPECT_FALSE(r.latest(metric::glucose).present);  // never had a reading
  patient_model c = m;
  std::vector<finding> out;
  c.apply(metric::heart_rate, 80, 10'000'000, "mon-2", out);
  c.apply(metric::glucose, 100, 10'000'000, "meter", out);
  EXPECT_EQ(m.encode(), bytes);  // the original did not change with its copy
  EXPECT_NE(c.encode(), bytes);
  EXPECT_EQ(c.latest(metric::glucose).value, 100);
  patient_settings own;
  own.baseline_k = 5;
  c.configure(own);  // settings are shared only until one changes them
  EXPECT_EQ(c.settings().baseline_k, 5);
  EXPECT_EQ(m.settings().baseline_k, patient_settings{}.baseline_k);
  patient_model fresh, reset;
  reset.configure(patient_settings{});  // as a snapshot without settings loads
  EXPECT_EQ(&reset.settings(), &fresh.settings());  // both read the one default instance
  EXPECT_NE(&c.settings(), &fresh.settings());
  c = r;  // assigned back
  EXPECT_EQ(c.encode(), bytes);
  EXPECT_FALSE(c.latest(metric::glucose).present);
}

TEST(patient_model_state, a_patient_model_without_readings_is_small) {
  // Per-metric state is made on a metric's first reading: most patients
  // have a few of the metrics (issue 24: memory per live twin).
  EXPECT_LT(sizeof(patient_model), 4096u);
}
