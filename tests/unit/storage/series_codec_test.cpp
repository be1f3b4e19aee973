#include "storage/series_codec.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

using namespace healthtwin::storage;

namespace {

std::vector<sample> decode_all(const std::string& chunk) {
  std::vector<sample> out;
  EXPECT_TRUE(decode_chunk(chunk, [&](sample s) { out.push_back(s); }));
  return out;
}

}  // namespace

TEST(series_codec, round_trips_every_sample_exactly) {
  series_chunk_builder b;
  std::vector<sample> in;
  std::mt19937_64 rng{42};
  std::uniform_real_distribution<double> v{-1e6, 1e6};
  int64_t t = 1'700'000'000'000;
  for (int i = 0; i < 500; ++i) {
    t += (i % 7 == 0) ? -3000 : 1000 + static_cast<int64_t>(rng() % 50);  // jitter and reordering
    in.push_back({t, i % 5 == 0 ? v(rng) : std::round(v(rng))});
  }
  in.push_back({t, std::numeric_limits<double>::infinity()});
  in.push_back({t, -0.0});
  for (auto s : in)
    b.append(s.time_ms, s.value);
  auto out = decode_all(b.finish());
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].time_ms, in[i].time_ms) << i;
    EXPECT_EQ(std::bit_cast<uint64_t>(out[i].value), std::bit_cast<uint64_t>(in[i].value)) << i;
  }
}

TEST(series_codec, header_carries_count_and_time_range) {
  series_chunk_builder b;
  b.append(5000, 1);
  b.append(3000, 2);
  b.append(9000, 3);
  chunk_header h;
  ASSERT_TRUE(read_chunk_header(b.finish(), h));
  EXPECT_EQ(h.count, 3u);
  EXPECT_EQ(h.min_time_ms, 3000);
  EXPECT_EQ(h.max_time_ms, 9000);
}

TEST(series_codec, steady_one_hertz_vitals_are_compact) {
  series_chunk_builder b;
  double hr = 72;
  for (int i = 0; i < 256; ++i) {
    hr += (i % 3) - 1;  // device precision: whole beats per minute
    b.append(1'700'000'000'000 + i * 1000, hr);
  }
  auto bytes_per_sample = static_cast<double>(b.finish().size()) / 256;
  EXPECT_LT(bytes_per_sample, 1.0);  // 16 bytes raw
}

TEST(series_codec, restore_from_body_continues_the_same_encoding) {
  series_chunk_builder a;
  for (int i = 0; i < 10; ++i)
    a.append(i * 1000, 90 + i);
  series_chunk_builder b;
  ASSERT_TRUE(series_chunk_builder::restore(a.body(), a.count(), b));
  a.append(10'000, 100);
  b.append(10'000, 100);
  EXPECT_EQ(a.finish(), b.finish());
}

// Restoring after any number of samples of every kind (quantized steps of
// each width, raw doubles, irregular and backward timestamps) and going on
// gives the bytes of a builder that was never interrupted.
TEST(series_codec, restore_after_any_sample_continues_the_same_encoding) {
  std::mt19937_64 rng{5};
  std::vector<sample> samples;
  int64_t t = 1'700'000'000'000;
  double v = 97;
  for (int i = 0; i < 300; ++i) {
    t += std::array<int64_t, 6>{1000, 1000, 999, 1500, -200, 90'000}[rng() % 6];
    switch (rng() % 5) {
      case 0: break;                                              // same value
      case 1: v += static_cast<double>(rng() % 7) - 3; break;     // small step
      case 2: v += static_cast<double>(rng() % 400) - 200; break;  // wider step
      case 3: v = static_cast<double>(rng() % 1'000'000); break;   // far jump
      default: v = std::ldexp(static_cast<double>(rng() % 1000), -20); break;  // raw
    }
    samples.push_back({t, v});
  }
  series_chunk_builder whole;
  for (auto& s : samples)
    whole.append(s.time_ms, s.value);
  for (size_t cut = 0; cut <= samples.size(); cut += 7) {
    series_chunk_builder head;
    for (size_t i = 0; i < cut; ++i)
      head.append(samples[i].time_ms, samples[i].value);
    series_chunk_builder resumed;
    ASSERT_TRUE(series_chunk_builder::restore(head.body(), head.count(), resumed)) << cut;
    EXPECT_EQ(resumed.min_time(), head.min_time()) << cut;
    EXPECT_EQ(resumed.max_time(), head.max_time()) << cut;
    for (size_t i = cut; i < samples.size(); ++i)
      resumed.append(samples[i].time_ms, samples[i].value);
    ASSERT_EQ(resumed.finish(), whole.finish()) << cut;
  }
}

TEST(series_codec, malformed_bytes_are_refused_not_crashed_on) {
  series_chunk_builder b;
  for (int i = 0; i < 20; ++i)
    b.append(i * 1000, i * 1.5);
  auto chunk = b.finish();
  for (size_t cut = 0; cut < chunk.size(); ++cut) {
    size_t n = 0;
    bool ok = decode_chunk(chunk.substr(0, cut), [&](sample) { ++n; });
    EXPECT_FALSE(ok) << cut;
  }
  series_chunk_builder r;
  EXPECT_FALSE(series_chunk_builder::restore("\x80\x80\x80", 1, r));
  EXPECT_FALSE(series_chunk_builder::restore(b.body(), b.count() + 1, r));
  EXPECT_FALSE(series_chunk_builder::restore(b.body(), b.count() - 1, r));
  EXPECT_FALSE(decode_chunk("\x02\x01", [](sample) {}));
}

TEST(series_codec, simulated_vitals_at_1_hz_take_under_2_bytes_per_sample) {
  // Noisy vitals at device precision, one chunk of 256 per metric.
  std::mt19937_64 rng{3};
  std::normal_distribution<double> n{0, 1};
  struct metric_sim {
    double base, sd, precision;
  };
  const metric_sim metrics[] = {{75, 2, 1}, {97, 0.6, 1}, {16, 0.7, 1}, {36.8, 0.05, 0.1}, {120, 4, 1}};
  size_t bytes = 0, samples = 0;
  for (auto& m : metrics) {
    series_chunk_builder b;
    for (int i = 0; i < 256; ++i) {
      double v = std::round((m.base + m.sd * n(rng)) / m.precision) * m.precision;
      if (m.precision < 1)
        v = std::round(v * 10) / 10;
      b.append(1'700'000'000'000 + i * 1000, v);
    }
    auto chunk = b.finish();
    auto decoded = decode_all(chunk);
    ASSERT_EQ(decoded.size(), 256u);
    bytes += chunk.size();
    samples += 256;
  }
  auto per_sample = static_cast<double>(bytes) / static_cast<double>(samples);
  EXPECT_LE(per_sample, 2.0) << per_sample;
  std::printf("simulated vitals: %.2f bytes per sample\n", per_sample);
}

TEST(series_codec, random_bytes_never_crash_the_decoder) {
  std::mt19937_64 rng{9};
  for (int i = 0; i < 20'000; ++i) {
    std::string junk(rng() % 64, '\0');
    for (auto& c : junk)
      c = static_cast<char>(rng());
    if (!junk.empty() && i % 2 == 0)
      junk[0] = 2;  // the current format: reach the body decoder
    size_t n = 0;
    decode_chunk(junk, [&](sample) { ++n; });
    series_chunk_builder r;
    series_chunk_builder::restore(junk, static_cast<uint32_t>(rng() % 8), r);
  }
  SUCCEED();
}

TEST(series_codec, downsampling_gives_min_max_mean_per_aligned_step) {
  std::vector<sample> s{{1000, 70}, {1500, 80}, {2999, 90}, {3000, 60}, {7000, 50}, {7100, 52}};
  auto b = downsample(s, 1000, 2000);
  ASSERT_EQ(b.size(), 3u);  // [1000,3000) [3000,5000) [7000,9000); [5000,7000) is empty
  EXPECT_EQ(b[0].start_ms, 1000);
  EXPECT_EQ(b[0].count, 3u);
  EXPECT_EQ(b[0].min, 70);
  EXPECT_EQ(b[0].max, 90);
  EXPECT_DOUBLE_EQ(b[0].mean, 80);
  EXPECT_EQ(b[1].start_ms, 3000);
  EXPECT_EQ(b[1].count, 1u);
  EXPECT_EQ(b[2].start_ms, 7000);
  EXPECT_DOUBLE_EQ(b[2].mean, 51);
  // A sample before the origin falls in the bucket that contains it.
  auto before = downsample({{-500, 1}}, 0, 1000);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].start_ms, -1000);
  EXPECT_TRUE(downsample({}, 0, 1000).empty());
}
