#include "actors/models/news2_timeline.hpp"

#include <algorithm>

namespace healthtwin::models {

namespace {

constexpr int64_t bucket_ms = 5 * 60'000;
constexpr int64_t tolerance_ms = 5 * 60'000;

}  // namespace

void news2_timeline::record(int64_t t, uint8_t total, bool complete) noexcept {
  if (size_ > 0) {
    auto& last = ring_[(head_ + capacity - 1) % capacity];
    if (t < last.time_ms)
      return;  // out of order: history only
    if (t - last.time_ms < spacing_ms) {
      if (total < last.total) {
        last.total = total;
        last.complete = complete;
      }
      return;
    }
  }
  ring_[head_] = news2_point{t, total, complete};
  head_ = static_cast<uint8_t>((head_ + 1) % capacity);
  if (size_ < capacity)
    ++size_;
}

std::optional<int> news2_timeline::change(int64_t now, uint8_t total, int64_t window_ms) const noexcept {
  auto from = now - window_ms - tolerance_ms, to = now - window_ms + tolerance_ms;
  std::optional<int> lowest;
  for (size_t i = 0; i < size_; ++i) {
    auto& p = ring_[(head_ + capacity - 1 - i) % capacity];
    if (p.time_ms < from)
      break;  // newest first: older ones are older still
    if (p.time_ms <= to)
      lowest = std::min(lowest.value_or(p.total), static_cast<int>(p.total));
  }
  if (!lowest)
    return std::nullopt;
  return static_cast<int>(total) - *lowest;
}

std::vector<news2_point> news2_timeline::points() const {
  std::vector<news2_point> out;
  out.reserve(size_);
  for (size_t i = size_; i-- > 0;)
    out.push_back(ring_[(head_ + capacity - 1 - i) % capacity]);
  return out;
}

bool news2_timeline::restore(const std::vector<news2_point>& points) noexcept {
  if (points.size() > capacity)
    return false;
  *this = news2_timeline{};
  for (auto& p : points) {
    ring_[head_] = p;
    head_ = static_cast<uint8_t>((head_ + 1) % capacity);
    ++size_;
  }
  return true;
}

std::vector<news2_point> news2_timeline::buckets() const {
  std::vector<news2_point> out;
  auto all = points();
  if (all.empty())
    return out;
  auto newest = all.back().time_ms;
  for (auto& p : all) {
    if (p.time_ms < newest - 2 * 3'600'000)
      continue;
    auto bucket = p.time_ms - p.time_ms % bucket_ms;
    if (!out.empty() && out.back().time_ms == bucket) {
      if (p.total < out.back().total)
        out.back() = news2_point{bucket, p.total, p.complete};
    } else {
      out.push_back(news2_point{bucket, p.total, p.complete});
    }
  }
  return out;
}

}  // namespace healthtwin::models
