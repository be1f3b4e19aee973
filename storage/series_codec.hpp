#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "actors/models/metric.hpp"

namespace healthtwin::storage {

/// One sample of a vital-sign series.
struct sample {
  int64_t time_ms;
  double value;  ///< a value, or a quality_marker() for a reading not charted
};

/// The value stored for a reading that is not a measurement (no signal,
/// invalid, unvalidated: models::reading_quality): a NaN whose payload names
/// the quality, so the reading is kept where it happened without ever
/// being read as a value. The codec stores it exactly (as a raw double).
double quality_marker(models::reading_quality q) noexcept;

/// The quality a stored value marks, or nullopt for a value.
std::optional<models::reading_quality> marker_quality(double value) noexcept;

/// True for a quality_marker().
inline bool is_quality_marker(double value) noexcept { return value != value; }

/// Encoder state carried from sample to sample.
struct series_codec_state {
  int64_t prev_ms = 0;
  int64_t prev_delta = 0;
  int64_t prev_q = 0;
  bool prev_quantized = false;
  unsigned scale = 3;
  uint32_t count = 0;
};

/// Builds one compressed chunk of a time series as a bit stream (format 2).
/// Timestamps: delta-of-deltas in Gorilla-style buckets (a steady series
/// costs 1 bit per timestamp). Values: when the value is an exact multiple
/// of the chunk's device precision (1, 0.1 or 0.01, chosen by the first
/// value) its integer delta to the previous one in 1, 7 or 13 bits, else
/// the raw double — lossless for any double. Simulated vitals at 1 Hz take
/// about 1 byte per sample (16 raw).
///
/// A plain value type; not thread-safe.
class series_chunk_builder {
public:
  void append(int64_t time_ms, double value);

  uint32_t count() const noexcept { return st_.count; }
  int64_t min_time() const noexcept { return min_ms_; }
  int64_t max_time() const noexcept { return max_ms_; }
  bool empty() const noexcept { return st_.count == 0; }

  /// The encoded samples without the chunk header (kept in twin snapshots
  /// together with count()).
  const std::string& body() const noexcept { return body_; }

  /// Header + body: what is stored as a closed chunk.
  std::string finish() const;

  /// Rebuilds a builder from body() and count(); false if malformed.
  static bool restore(std::string_view body, uint32_t count, series_chunk_builder& out);

private:
  void put_bits(uint64_t v, unsigned n);
  void put_prefix(unsigned ones);

  std::string body_;
  unsigned free_bits_ = 0;  // unused low bits of the last byte
  series_codec_state st_;
  int64_t min_ms_ = 0;
  int64_t max_ms_ = 0;
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

/// Summary of the samples in [start_ms, start_ms + step).
struct series_bucket {
  int64_t start_ms = 0;
  double min = 0;
  double max = 0;
  double mean = 0;
  uint32_t count = 0;
};

/// Downsamples time-sorted samples into buckets of `step_ms` aligned to
/// `origin_ms` (min, max, mean per bucket; empty buckets are left out).
/// step_ms must be > 0.
std::vector<series_bucket> downsample(const std::vector<sample>& sorted, int64_t origin_ms,
                                      int64_t step_ms);

}  // namespace healthtwin::storage
