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
  // Points are in strictly increasing time (record, restore): the first at
  // or after `from` by bisection, then the few up to `to`.
  size_t lo = 0, hi = size_;
  while (lo < hi) {
    auto mid = (lo + hi) / 2;
    if (at(mid).time_ms < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  std::optional<int> lowest;
  for (auto k = lo; k < size_ && at(k).time_ms <= to; ++k)
    lowest = std::min(lowest.value_or(at(k).total), static_cast<int>(at(k).total));
  if (!lowest)
    return std::nullopt;
  return static_cast<int>(total) - *lowest;
}

std::vector<news2_point> news2_timeline::points() const {
  std::vector<news2_point> out;
  out.reserve(size_);
  for (size_t k = 0; k < size_; ++k)
    out.push_back(at(k));
  return out;
}

bool news2_timeline::restore(const std::vector<news2_point>& points) noexcept {
  if (points.size() > capacity)
    return false;
  for (size_t k = 1; k < points.size(); ++k)
    if (points[k].time_ms <= points[k - 1].time_ms)
      return false;  // not as record() keeps them
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
