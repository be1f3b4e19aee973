#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "actors/ingest/ingest_sequencer.hpp"
#include "healthtwin/v1/ingest.pb.h"

namespace healthtwin::services {

/// Limits applied to every ingest request.
struct ingest_limits {
  uint32_t max_readings = 10'000;
  size_t max_bytes = size_t{4} << 20;
  int64_t max_clock_skew_ms = 5 * 60'000;
};

/// The highest sequence number a reading may carry: 2^53, the largest
/// integer JSON carries exactly (docs/api.md, "Sequence numbers").
inline constexpr uint64_t max_sequence = uint64_t{1} << 53;

/// Readings before 2000-01-01 are refused as implausible device clocks.
inline constexpr int64_t earliest_reading_ms = 946'684'800'000;

/// The outcome of the stateless checks of one ingest request.
struct validated_ingest {
  /// Structural problems: when not empty, the whole request is refused
  /// (INVALID_ARGUMENT) and nothing of it is written.
  std::vector<std::pair<std::string, std::string>> violations;
  /// Readings that passed, grouped per device, for the sequencer.
  std::vector<actors::ingest_group> groups;
  size_t readings = 0;
  /// Readings refused one by one; the others are still accepted.
  std::vector<actors::reading_rejection> rejections;
};

/// Checks what can be checked without state: sizes and array lengths (whole
/// request), then per reading the device name, sequence, metric, value
/// (finite, in the metric's plausible range) and timestamp (not before
/// 2000, not more than max_clock_skew_ms after `now_ms`). Never throws,
/// never asserts: any bytes a client sends are handled.
validated_ingest validate_ingest(const healthtwin::v1::IngestRequest& request, int64_t now_ms,
                                 const ingest_limits& limits);

}  // namespace healthtwin::services
