#pragma once

#include <chrono>
#include <cstdint>

namespace healthtwin::models {

/// The node's wall clock in milliseconds since the Unix epoch: receive
/// times, record times, health timestamps. Components that tests drive
/// with an injected clock call it only when none is set.
inline int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace healthtwin::models
