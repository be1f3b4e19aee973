#pragma once

#include <array>
#include <cstdint>

namespace healthtwin::models {

/// Per-device anti-replay window over sequence numbers (as in IPsec/DTLS):
/// accepts each sequence number once, in any order within `size` numbers
/// below the highest one seen. Sequence 0 is invalid.
///
/// 40 bytes; not thread-safe; a plain value type.
class sequence_window {
public:
  /// Sequence numbers more than this far below the highest are refused.
  static constexpr uint64_t size = 256;

  enum class verdict : uint8_t {
    accept,     ///< new; now marked as seen
    duplicate,  ///< seen before
    too_old,    ///< below the window: cannot tell whether it was seen
    invalid,    ///< sequence number 0
  };

  /// Decides about `seq` without changing the window.
  verdict check(uint64_t seq) const noexcept;

  /// Decides about `seq` and marks it as seen when accepted.
  verdict admit(uint64_t seq) noexcept;

  /// Adds every number `other` has seen (used when rebuilding a window from
  /// a snapshot plus a log tail: the union is idempotent).
  void merge(const sequence_window& other) noexcept;

  /// Highest sequence number seen; 0 if none.
  uint64_t highest() const noexcept { return highest_; }

  /// Raw state for snapshots: bit i of word w means highest - (64*w + i) was seen.
  const std::array<uint64_t, 4>& seen_bits() const noexcept { return seen_; }

  /// Restores raw state written by seen_bits()/highest().
  static sequence_window restore(uint64_t highest, const std::array<uint64_t, 4>& seen) noexcept;

  friend bool operator==(const sequence_window&, const sequence_window&) = default;

private:
  bool test(uint64_t distance) const noexcept;
  void set(uint64_t distance) noexcept;
  void shift(uint64_t by) noexcept;

  uint64_t highest_ = 0;
  std::array<uint64_t, 4> seen_{};
};

}  // namespace healthtwin::models
