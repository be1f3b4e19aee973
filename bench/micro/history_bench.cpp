// 24 h of 1 Hz data for one metric of one patient, read back and
// downsampled to 1-minute buckets from a freshly opened store (cold block
// cache). With HISTORY_BENCH_DROP_CACHES=1 (root) the OS page cache is
// dropped before every run too: a fully cold read. Also prints the stored
// bytes per sample.
//
//   build/bench/history_bench [runs=5] [dir=/tmp/healthtwin-history-bench]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "storage/series_codec.hpp"
#include "storage/series_table.hpp"
#include "storage/store.hpp"

using namespace healthtwin;

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  std::string dir = argc > 2 ? argv[2] : "/tmp/healthtwin-history-bench";
  std::filesystem::remove_all(dir);
  const std::string patient = "tenants/bench/patients/p-1";
  const int64_t t0 = 1'700'000'000'000;
  const int samples = 86'400;
  size_t bytes = 0;
  {
    storage::store_settings s;
    s.data_dir = dir;
    s.sync_wal = false;
    auto st = storage::store::open(s);
    if (!st) {
      std::fprintf(stderr, "open failed\n");
      return 1;
    }
    storage::series_table table{**st};
    std::mt19937_64 rng{1};
    std::normal_distribution<double> noise{0, 2};
    storage::series_chunk_builder b;
    uint32_t chunk = 0;
    for (int i = 0; i < samples; ++i) {
      b.append(t0 + int64_t{i} * 1000, std::round(75 + 5 * std::sin(i / 3600.0) + noise(rng)));
      if (b.count() == 256 || i + 1 == samples) {
        auto bytes_chunk = b.finish();
        bytes += bytes_chunk.size();
        if (table.put_chunk(patient, 1, chunk++, bytes_chunk)) {
          std::fprintf(stderr, "write failed\n");
          return 1;
        }
        b = storage::series_chunk_builder{};
      }
    }
    (void)(*st)->compact(storage::column::series);
    std::printf("stored %d samples in %u chunks: %.2f bytes per sample\n", samples, chunk,
                static_cast<double>(bytes) / samples);
  }
  std::vector<double> ms;
  bool drop = std::getenv("HISTORY_BENCH_DROP_CACHES") != nullptr;
  for (int r = 0; r < runs; ++r) {
    if (drop && std::system("sync; echo 3 > /proc/sys/vm/drop_caches") != 0) {
      std::fprintf(stderr, "cannot drop the page cache (needs root)\n");
      return 1;
    }
    storage::store_settings s;
    s.data_dir = dir;
    auto st = storage::store::open(s);  // a fresh block cache
    if (!st)
      return 1;
    storage::series_table table{**st};
    auto start = std::chrono::steady_clock::now();
    std::vector<storage::sample> out;
    if (table.read(patient, 1, t0, t0 + 86'400'000, 1u << 20, out))
      return 1;
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.time_ms < b.time_ms; });
    auto buckets = storage::downsample(out, t0, 60'000);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    if (out.size() != static_cast<size_t>(samples) || buckets.size() != 1440)
      return 1;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("24 h at 1 Hz read + 1-min downsample from a fresh store: median %.2f ms (min %.2f, max %.2f, %d runs)\n",
              ms[ms.size() / 2], ms.front(), ms.back(), runs);
  std::filesystem::remove_all(dir);
  return 0;
}
