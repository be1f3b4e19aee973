#include "actors/models/sequence_window.hpp"

#include <cstddef>

namespace healthtwin::models {

bool sequence_window::test(uint64_t d) const noexcept {
  return (seen_[d / 64] >> (d % 64)) & 1u;
}

void sequence_window::set(uint64_t d) noexcept {
  seen_[d / 64] |= uint64_t{1} << (d % 64);
}

// Moves every bit `by` places towards older distances (bigger index).
void sequence_window::shift(uint64_t by) noexcept {
  if (by >= size) {
    seen_ = {};
    return;
  }
  auto words = by / 64;
  auto bits = by % 64;
  for (std::size_t w = seen_.size(); w-- > 0;) {
    uint64_t v = 0;
    if (w >= words) {
      v = seen_[w - words] << bits;
      if (bits != 0 && w > words)
        v |= seen_[w - words - 1] >> (64 - bits);
    }
    seen_[w] = v;
  }
}

sequence_window::verdict sequence_window::check(uint64_t seq) const noexcept {
  if (seq == 0)
    return verdict::invalid;
  if (seq > highest_)
    return verdict::accept;
  auto d = highest_ - seq;
  if (d >= size)
    return verdict::too_old;
  return test(d) ? verdict::duplicate : verdict::accept;
}

sequence_window::verdict sequence_window::admit(uint64_t seq) noexcept {
  auto v = check(seq);
  if (v != verdict::accept)
    return v;
  if (seq > highest_) {
    shift(seq - highest_);
    highest_ = seq;
    set(0);
  } else {
    set(highest_ - seq);
  }
  return v;
}

void sequence_window::merge(const sequence_window& other) noexcept {
  if (other.highest_ == 0)
    return;
  // Mark from the oldest to the newest so the window only moves forward.
  for (uint64_t d = size; d-- > 0;)
    if (other.test(d) && other.highest_ > d)
      admit(other.highest_ - d);
}

sequence_window sequence_window::restore(uint64_t highest,
                                         const std::array<uint64_t, 4>& seen) noexcept {
  sequence_window w;
  w.highest_ = highest;
  w.seen_ = seen;
  return w;
}

}  // namespace healthtwin::models
