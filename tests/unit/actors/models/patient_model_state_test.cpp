// The patient model's snapshot state: what it keeps per metric, its bytes,
// and copies.
#include "actors/models/patient_model.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

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

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(patient_model_state, the_snapshot_bytes_are_those_of_version_5) {
  // Fingerprint of version 5 (only metrics with state; idle conditions in
  // one byte): a change of the bytes is a change of the format.
  auto bytes = two_metrics().encode();
  EXPECT_EQ(bytes.size(), 962u);
  EXPECT_EQ(fingerprint(bytes), 12258535425108404322ull);
  EXPECT_EQ(patient_model{}.encode().size(), 20u);
  EXPECT_EQ(fingerprint(patient_model{}.encode()), 11533123623856418918ull);
}

TEST(patient_model_state, a_version_4_snapshot_reads_back_as_the_same_state) {
  // Written by the version 4 encoder (every metric, absent ones as their
  // default state) from two_metrics(): it reads back as that model.
  auto v4 = read_file(std::string{HEALTHTWIN_MODELS_TEST_DATA} + "/patient_model_v4.bin");
  ASSERT_EQ(v4.size(), 6344u);
  ASSERT_EQ(fingerprint(v4), 3235768660940576344ull);
  patient_model r;
  ASSERT_TRUE(r.decode(v4));
  EXPECT_EQ(r.encode(), two_metrics().encode());
  EXPECT_FALSE(r.latest(metric::glucose).present);
}

TEST(patient_model_state, a_malformed_version_5_snapshot_is_refused) {
  auto bytes = two_metrics().encode();
  patient_model r;
  // The mask of metrics held follows the version and newest time.
  auto unknown = bytes;
  unknown[1 + 8 + 1] = static_cast<char>(0x80);  // bit 15: no such metric
  EXPECT_FALSE(r.decode(unknown));
  auto truncated = bytes.substr(0, bytes.size() - 1);
  EXPECT_FALSE(r.decode(truncated));
  auto longer = bytes + '\0';
  EXPECT_FALSE(r.decode(longer));
  // The empty model's bytes: version, newest, mask, then its conditions'
  // tags; a tag that is neither initial nor kept is refused.
  auto empty = patient_model{}.encode();
  ASSERT_EQ(static_cast<uint8_t>(empty[1 + 8 + 2]), 0u);
  empty[1 + 8 + 2] = 7;
  EXPECT_FALSE(r.decode(empty));
  EXPECT_EQ(r.encode(), patient_model{}.encode());  // a refused decode leaves the model as it was
}

TEST(patient_model_state, a_snapshot_with_an_impossible_time_or_number_is_refused) {
  // Stored times and numbers feed differences, casts and comparisons: a
  // time past 2^52 ms either way, NaN or infinity would be undefined
  // behaviour there (found by the model_state fuzzer), so they are refused.
  auto bytes = two_metrics().encode();
  patient_model r;
  auto at = [](std::string b, size_t offset, auto value) {
    std::memcpy(b.data() + offset, &value, sizeof value);
    return b;
  };
  constexpr size_t newest = 1, first_value = 1 + 8 + 2 + 1;  // version, newest, mask, present
  EXPECT_TRUE(r.decode(at(bytes, newest, int64_t{1} << 52)));
  EXPECT_FALSE(r.decode(at(bytes, newest, (int64_t{1} << 52) + 1)));
  EXPECT_FALSE(r.decode(at(bytes, newest, INT64_MIN)));
  EXPECT_TRUE(r.decode(at(bytes, first_value, 71.5)));
  EXPECT_FALSE(r.decode(at(bytes, first_value, std::nan(""))));
  EXPECT_FALSE(r.decode(at(bytes, first_value, HUGE_VAL)));
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

TEST(patient_model_state, mean_arterial_pressure_is_kept_in_a_snapshot_as_every_metric) {
  // Metric 13 arrived after versions 2-4 (which write 12): version 5's mask
  // carries it.
  patient_model m;
  std::vector<finding> out;
  int64_t t = 1'000'000;
  for (int i = 0; i < 20; ++i, t += 60 * s)
    m.apply_frame(t,
                  {{metric::systolic_bp, 118.0 + i % 3, reading_quality::valid, "cuff-1"},
                   {metric::mean_arterial_pressure, 84.0 + i % 3, reading_quality::valid, "cuff-1"}},
                  out);
  patient_model r;
  ASSERT_TRUE(r.decode(m.encode()));
  EXPECT_EQ(r.encode(), m.encode());
  ASSERT_TRUE(r.latest(metric::mean_arterial_pressure).present);
  EXPECT_EQ(r.latest(metric::mean_arterial_pressure).value, 84.0 + 19 % 3);
  EXPECT_EQ(r.latest(metric::mean_arterial_pressure).source_device, "cuff-1");
}
