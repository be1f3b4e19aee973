#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace healthtwin::models {

/// One point of the NEWS2 history: the lowest total of a stretch of data
/// time (the lowest, so that a transient rise never becomes a reference).
struct news2_point {
  int64_t time_ms = 0;  ///< start of the stretch
  uint8_t total = 0;
  bool complete = false;
};

/// NEWS2 totals of the last two hours at their own data times: a point per
/// 150 s of data at most, holding the lowest total scored in it. Points
/// start where the data starts, not on a clock grid, so a change over time
/// (news2_timeline::change) does not depend on where the readings fall
/// against the clock: shifting every reading by two minutes shifts every
/// answer by two minutes (a 5-minute grid moved an alert's end by 23).
///
/// A plain value type (~800 bytes); not thread-safe.
class news2_timeline {
public:
  static constexpr size_t capacity = 48;
  static constexpr int64_t spacing_ms = 150'000;

  /// Records the total scored at data time `t` (older than the newest point:
  /// ignored).
  void record(int64_t t, uint8_t total, bool complete) noexcept;

  /// `total` now minus the lowest total of the points in
  /// [now - window - 5 min, now - window + 5 min]; nullopt without any.
  std::optional<int> change(int64_t now, uint8_t total, int64_t window_ms) const noexcept;

  /// The lowest total per 5-minute clock bucket over the last two hours,
  /// oldest first (for display).
  std::vector<news2_point> buckets() const;

  /// The points, oldest first (snapshots).
  std::vector<news2_point> points() const;
  /// Restores points() output; false when there are too many or they are
  /// not in increasing time.
  bool restore(const std::vector<news2_point>& points) noexcept;

private:
  /// The k-th point, oldest first.
  const news2_point& at(size_t k) const noexcept { return ring_[(head_ + capacity - size_ + k) % capacity]; }

  std::array<news2_point, capacity> ring_{};
  uint8_t size_ = 0;
  uint8_t head_ = 0;  // next slot
};

}  // namespace healthtwin::models
