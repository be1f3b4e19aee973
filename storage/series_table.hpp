#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <caf/error.hpp>

#include "storage/series_codec.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

/// Closed time-series chunks (column family `series`), one chunk per key,
/// numbered per patient and metric from 0. The open chunk of each series
/// lives in the patient twin (and its snapshot) until it is closed.
/// Thread-safe.
class series_table {
public:
  explicit series_table(store& s) : store_(s) {}

  /// Stores a closed chunk (series_chunk_builder::finish()). Writing the same
  /// chunk again (replay after a crash) overwrites it with the same bytes.
  caf::error put_chunk(std::string_view patient, uint8_t metric, uint32_t chunk_no,
                       std::string_view chunk);

  /// Appends the samples of closed chunks 0..before_chunk-1 with
  /// from_ms <= time < to_ms to `out` (unsorted).
  caf::error read(std::string_view patient, uint8_t metric, int64_t from_ms, int64_t to_ms,
                  uint32_t before_chunk, std::vector<sample>& out);

private:
  store& store_;
};

}  // namespace healthtwin::storage
