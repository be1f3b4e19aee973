#include "services/grpc/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace healthtwin::services {

rate_limiter::rate_limiter(double rate_per_s, double burst, size_t max_keys)
    : rate_(rate_per_s), burst_(burst), max_keys_per_shard_(std::max<size_t>(1, max_keys / 16)) {}

std::chrono::milliseconds rate_limiter::take(std::string_view key, double units, clock::time_point now) {
  units = std::min(units, burst_);
  auto& s = shards_[std::hash<std::string_view>{}(key) % shards_.size()];
  std::lock_guard<std::mutex> guard{s.mtx};
  auto it = s.buckets.find(std::string{key});
  if (it == s.buckets.end()) {
    if (s.buckets.size() >= max_keys_per_shard_) {
      // Forget buckets that have refilled: their callers are within limits.
      for (auto i = s.buckets.begin(); i != s.buckets.end();) {
        double refilled = i->second.tokens +
                          rate_ * std::chrono::duration<double>(now - i->second.last).count();
        i = refilled >= burst_ ? s.buckets.erase(i) : std::next(i);
      }
    }
    it = s.buckets.emplace(std::string{key}, bucket{burst_, now}).first;
  }
  auto& b = it->second;
  b.tokens = std::min(burst_, b.tokens + rate_ * std::chrono::duration<double>(now - b.last).count());
  b.last = now;
  if (b.tokens >= units) {
    b.tokens -= units;
    return std::chrono::milliseconds{0};
  }
  auto wait_s = (units - b.tokens) / rate_;
  return std::chrono::milliseconds{static_cast<int64_t>(std::ceil(wait_s * 1000))};
}

size_t rate_limiter::keys() {
  size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s.mtx};
    n += s.buckets.size();
  }
  return n;
}

}  // namespace healthtwin::services
