#pragma once

#include <array>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace healthtwin::services {

/// Token buckets keyed by principal (or device): each key may spend `rate`
/// units per second with bursts up to `burst`. Memory is bounded: beyond
/// `max_keys` buckets per shard, idle (full) buckets are forgotten, which
/// only forgives callers that were within their limit anyway. Thread-safe.
class rate_limiter {
public:
  using clock = std::chrono::steady_clock;

  rate_limiter(double rate_per_s, double burst, size_t max_keys = 1 << 16);

  /// Spends `units` for `key`: zero when allowed, otherwise how long until
  /// they would be (nothing is spent then). A request larger than the burst
  /// is judged as a full burst, so it can pass once the bucket is full.
  std::chrono::milliseconds take(std::string_view key, double units, clock::time_point now = clock::now());

  double rate() const { return rate_; }

  /// Buckets held (for tests and metrics).
  size_t keys();

private:
  struct bucket {
    double tokens;
    clock::time_point last;
  };
  struct shard {
    std::mutex mtx;
    std::unordered_map<std::string, bucket> buckets;
  };
  double rate_, burst_;
  size_t max_keys_per_shard_;
  std::array<shard, 16> shards_;
};

}  // namespace healthtwin::services
