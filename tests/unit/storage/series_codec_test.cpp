#include "storage/series_codec.hpp"

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
  EXPECT_LT(bytes_per_sample, 5.0);  // 16 bytes raw
}

TEST(series_codec, restore_from_body_continues_the_same_encoding) {
  series_chunk_builder a;
  for (int i = 0; i < 10; ++i)
    a.append(i * 1000, 90 + i);
  series_chunk_builder b;
  ASSERT_TRUE(series_chunk_builder::restore(a.body(), b));
  a.append(10'000, 100);
  b.append(10'000, 100);
  EXPECT_EQ(a.finish(), b.finish());
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
  EXPECT_FALSE(series_chunk_builder::restore("\x80\x80\x80", r));
  EXPECT_FALSE(decode_chunk("\x02\x01", [](sample) {}));
}
