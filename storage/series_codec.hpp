#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace healthtwin::storage {

/// One sample of a vital-sign series.
struct sample {
  int64_t time_ms;
  double value;
};

/// Builds one compressed chunk of a time series. Timestamps are stored as
/// zig-zag varint delta-of-deltas (a steady 1 Hz series costs 1 byte per
/// timestamp); values are XORed with the previous value and only the
/// non-zero middle bytes are kept (Gorilla-style, byte aligned), which is
/// lossless for any double.
///
/// A plain value type; not thread-safe.
class series_chunk_builder {
public:
  void append(int64_t time_ms, double value);

  uint32_t count() const noexcept { return count_; }
  int64_t min_time() const noexcept { return min_ms_; }
  int64_t max_time() const noexcept { return max_ms_; }
  bool empty() const noexcept { return count_ == 0; }

  /// The encoded samples without the chunk header (kept in twin snapshots).
  const std::string& body() const noexcept { return body_; }

  /// Header + body: what is stored as a closed chunk.
  std::string finish() const;

  /// Rebuilds a builder from body(); false if the bytes are malformed.
  static bool restore(std::string_view body, series_chunk_builder& out);

private:
  std::string body_;
  uint32_t count_ = 0;
  int64_t min_ms_ = 0;
  int64_t max_ms_ = 0;
  int64_t prev_ms_ = 0;
  int64_t prev_delta_ = 0;
  uint64_t prev_bits_ = 0;
};

/// Header of a closed chunk.
struct chunk_header {
  uint32_t count = 0;
  int64_t min_time_ms = 0;
  int64_t max_time_ms = 0;
};

/// Reads the header of a closed chunk; false if malformed.
bool read_chunk_header(std::string_view chunk, chunk_header& out, size_t* body_offset = nullptr);

/// Decodes a closed chunk, calling `fn` per sample in stored order; false if
/// malformed (fn may have been called for a prefix).
bool decode_chunk(std::string_view chunk, const std::function<void(sample)>& fn);

/// Decodes a body (no header) with `count` samples.
bool decode_body(std::string_view body, uint32_t count, const std::function<void(sample)>& fn);

}  // namespace healthtwin::storage
