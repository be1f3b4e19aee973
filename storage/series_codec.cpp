#include "storage/series_codec.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace healthtwin::storage {

namespace {

constexpr uint8_t chunk_format = 2;

uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

// Two's complement arithmetic that wraps instead of overflowing: encoder
// and decoder wrap alike, so any int64 round-trips and junk cannot trap.
int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

int64_t wrap_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0)
      return true;
  }
  return false;
}

// Values are stored as the integer value x 10^scale when that is exact
// (device precision: whole numbers, 0.1 degC), as a delta to the previous
// one; anything else as the raw double. The scale is the chunk's first
// value's.
constexpr int64_t scale_factor[] = {1, 10, 100};
constexpr unsigned raw_scale = 3;
constexpr double max_quantized = 1e12;  // |q| < 2^40: zig-zag fits 42 bits
constexpr unsigned absolute_bits = 42;

bool quantize(double v, unsigned scale, int64_t& q) {
  if (scale >= raw_scale || !std::isfinite(v) || (v == 0 && std::signbit(v)))
    return false;
  auto f = static_cast<double>(scale_factor[scale]);
  auto r = std::nearbyint(v * f);
  if (!(std::fabs(r) < max_quantized))
    return false;
  q = static_cast<int64_t>(r);
  return static_cast<double>(q) / f == v;
}

double dequantize(int64_t q, unsigned scale) {
  return static_cast<double>(q) / static_cast<double>(scale_factor[scale]);
}

// Timestamp delta-of-delta: 0 | 10 + 7 bits | 110 + 12 | 1110 + 20 | 1111 + 64.
constexpr unsigned time_widths[] = {0, 7, 12, 20, 64};
// Value: 0 (same) | 10 + 5-bit delta | 110 + 10-bit delta | 1110 + 42-bit
// absolute | 1111 + 64-bit raw double.
constexpr unsigned value_widths[] = {0, 5, 10};

struct bit_reader {
  std::string_view in;
  size_t pos = 0;  // bits consumed

  // Takes what is left of the current byte at a time, most significant first.
  bool get(unsigned n, uint64_t& v) {
    if (pos + n > in.size() * 8)
      return false;
    v = 0;
    while (n > 0) {
      unsigned left = 8 - static_cast<unsigned>(pos % 8);  // unread bits of this byte
      unsigned take = std::min(n, left);
      auto byte = static_cast<uint8_t>(in[pos / 8]);
      auto part = (static_cast<unsigned>(byte) >> (left - take)) & ((1u << take) - 1);
      v = (v << take) | part;
      pos += take;
      n -= take;
    }
    return true;
  }

  // Up to 4 ones, ended by a zero unless there are 4.
  bool prefix(unsigned& ones) {
    ones = 0;
    uint64_t b;
    while (ones < 4) {
      if (!get(1, b))
        return false;
      if (b == 0)
        break;
      ++ones;
    }
    return true;
  }

  // What is left is the last byte's zero padding.
  bool at_end() const {
    auto left = in.size() * 8 - pos;
    if (left >= 8)
      return false;
    return left == 0 || (static_cast<uint8_t>(in.back()) & ((1u << left) - 1)) == 0;
  }
};

// Mirrors series_chunk_builder::append.
struct decoder {
  series_codec_state st;

  bool next(bit_reader& r, sample& s) {
    uint64_t v;
    if (st.count == 0) {
      if (!r.get(64, v))
        return false;
      s.time_ms = unzigzag(v);
      if (!r.get(2, v))
        return false;
      st.scale = static_cast<unsigned>(v);
    } else {
      unsigned b;
      if (!r.prefix(b) || !r.get(time_widths[b], v))
        return false;
      auto delta = wrap_add(st.prev_delta, unzigzag(v));
      s.time_ms = wrap_add(st.prev_ms, delta);
      st.prev_delta = delta;
    }
    st.prev_ms = s.time_ms;

    unsigned b;
    if (!r.prefix(b))
      return false;
    if (b == 4) {
      if (!r.get(64, v))
        return false;
      s.value = std::bit_cast<double>(v);
      st.prev_quantized = false;
    } else if (b == 3) {
      if (st.scale >= raw_scale || !r.get(absolute_bits, v))
        return false;
      st.prev_q = unzigzag(v);
      st.prev_quantized = true;
      s.value = dequantize(st.prev_q, st.scale);
    } else {
      if (!st.prev_quantized || !r.get(value_widths[b], v))
        return false;
      st.prev_q = wrap_add(st.prev_q, b == 0 ? 0 : unzigzag(v));
      if (!(std::fabs(static_cast<double>(st.prev_q)) < max_quantized))
        return false;
      s.value = dequantize(st.prev_q, st.scale);
    }
    ++st.count;
    return true;
  }
};

}  // namespace

void series_chunk_builder::put_bits(uint64_t v, unsigned n) {
  // Fills the last byte's free bits, then whole bytes, most significant first.
  while (n > 0) {
    if (free_bits_ == 0) {
      body_.push_back('\0');
      free_bits_ = 8;
    }
    auto take = std::min(n, free_bits_);
    auto part = static_cast<unsigned>((v >> (n - take)) & ((1u << take) - 1));
    body_.back() = static_cast<char>(static_cast<uint8_t>(body_.back()) | (part << (free_bits_ - take)));
    free_bits_ -= take;
    n -= take;
  }
}

void series_chunk_builder::put_prefix(unsigned ones) {
  put_bits((uint64_t{1} << ones) - 1, ones);
  if (ones < 4)
    put_bits(0, 1);
}

namespace {

// Quiet NaN with the quality in its low payload bits.
constexpr uint64_t marker_bits = 0x7FF8'0000'4854'0000ULL;  // "HT" in the payload

}  // namespace

double quality_marker(models::reading_quality q) noexcept {
  return std::bit_cast<double>(marker_bits | static_cast<uint64_t>(q));
}

std::optional<models::reading_quality> marker_quality(double value) noexcept {
  auto bits = std::bit_cast<uint64_t>(value);
  if ((bits & ~uint64_t{0xFF}) != marker_bits || (bits & 0xFF) >= models::reading_quality_count)
    return std::nullopt;
  return static_cast<models::reading_quality>(bits & 0xFF);
}

void series_chunk_builder::append(int64_t time_ms, double value) {
  if (st_.count == 0) {
    put_bits(zigzag(time_ms), 64);
    int64_t q;
    // A chunk that starts with a marker still quantizes the values after
    // it, at 0.1 (whole numbers and tenths both fit).
    st_.scale = is_quality_marker(value) ? 1 : raw_scale;
    for (unsigned s = 0; s < raw_scale && !is_quality_marker(value); ++s)
      if (quantize(value, s, q)) {
        st_.scale = s;
        break;
      }
    put_bits(st_.scale, 2);
    min_ms_ = max_ms_ = time_ms;
  } else {
    auto delta = wrap_sub(time_ms, st_.prev_ms);
    auto zz = zigzag(wrap_sub(delta, st_.prev_delta));
    unsigned b = 0;
    while (time_widths[b] < 64 && zz >= (uint64_t{1} << time_widths[b]))
      ++b;
    put_prefix(b);
    put_bits(zz, time_widths[b]);
    st_.prev_delta = delta;
    min_ms_ = std::min(min_ms_, time_ms);
    max_ms_ = std::max(max_ms_, time_ms);
  }
  st_.prev_ms = time_ms;

  int64_t q;
  if (!quantize(value, st_.scale, q)) {
    put_prefix(4);
    put_bits(std::bit_cast<uint64_t>(value), 64);
    st_.prev_quantized = false;
  } else {
    auto zz = zigzag(q - st_.prev_q);
    if (st_.prev_quantized && q == st_.prev_q) {
      put_prefix(0);
    } else if (st_.prev_quantized && zz < (uint64_t{1} << value_widths[1])) {
      put_prefix(1);
      put_bits(zz, value_widths[1]);
    } else if (st_.prev_quantized && zz < (uint64_t{1} << value_widths[2])) {
      put_prefix(2);
      put_bits(zz, value_widths[2]);
    } else {
      put_prefix(3);
      put_bits(zigzag(q), absolute_bits);
    }
    st_.prev_q = q;
    st_.prev_quantized = true;
  }
  ++st_.count;
}

std::string series_chunk_builder::finish() const {
  std::string out;
  out.reserve(body_.size() + 24);
  out.push_back(static_cast<char>(chunk_format));
  put_varint(out, st_.count);
  put_varint(out, zigzag(min_ms_));
  put_varint(out, static_cast<uint64_t>(max_ms_ - min_ms_));
  out.append(body_);
  return out;
}

// The decoder's state after the last sample is the builder's: the body is
// taken as it is, not encoded again.
bool series_chunk_builder::restore(std::string_view body, uint32_t count,
                                   series_chunk_builder& out) {
  bit_reader r{body};
  decoder d;
  sample s{};
  int64_t min_ms = 0, max_ms = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (!d.next(r, s))
      return false;
    min_ms = i == 0 ? s.time_ms : std::min(min_ms, s.time_ms);
    max_ms = i == 0 ? s.time_ms : std::max(max_ms, s.time_ms);
  }
  if (!r.at_end())
    return false;
  out.body_.assign(body);
  out.free_bits_ = static_cast<unsigned>(body.size() * 8 - r.pos);
  out.st_ = d.st;
  out.min_ms_ = min_ms;
  out.max_ms_ = max_ms;
  return true;
}

bool read_chunk_header(std::string_view chunk, chunk_header& out, size_t* body_offset) {
  auto in = chunk;
  if (in.empty() || static_cast<uint8_t>(in.front()) != chunk_format)
    return false;
  in.remove_prefix(1);
  uint64_t count, min_z, span;
  if (!get_varint(in, count) || !get_varint(in, min_z) || !get_varint(in, span))
    return false;
  if (count > UINT32_MAX)
    return false;
  out.count = static_cast<uint32_t>(count);
  out.min_time_ms = unzigzag(min_z);
  out.max_time_ms = out.min_time_ms + static_cast<int64_t>(span);
  if (body_offset)
    *body_offset = chunk.size() - in.size();
  return true;
}

bool decode_body(std::string_view body, uint32_t count, const std::function<void(sample)>& fn) {
  bit_reader r{body};
  decoder d;
  sample s{};
  for (uint32_t i = 0; i < count; ++i) {
    if (!d.next(r, s))
      return false;
    fn(s);
  }
  return r.at_end();
}

bool decode_chunk(std::string_view chunk, const std::function<void(sample)>& fn) {
  chunk_header h;
  size_t offset = 0;
  if (!read_chunk_header(chunk, h, &offset))
    return false;
  return decode_body(chunk.substr(offset), h.count, fn);
}

std::vector<series_bucket> downsample(const std::vector<sample>& sorted, int64_t origin_ms,
                                      int64_t step_ms) {
  std::vector<series_bucket> out;
  double sum = 0;
  for (auto& s : sorted) {
    if (is_quality_marker(s.value))
      continue;  // not a value
    auto offset = s.time_ms - origin_ms;
    auto k = offset >= 0 ? offset / step_ms : -((-offset + step_ms - 1) / step_ms);
    auto start = origin_ms + k * step_ms;
    if (out.empty() || out.back().start_ms != start) {
      if (!out.empty())
        out.back().mean = sum / out.back().count;
      out.push_back(series_bucket{start, s.value, s.value, 0, 0});
      sum = 0;
    }
    auto& b = out.back();
    b.min = std::min(b.min, s.value);
    b.max = std::max(b.max, s.value);
    sum += s.value;
    ++b.count;
  }
  if (!out.empty())
    out.back().mean = sum / out.back().count;
  return out;
}

}  // namespace healthtwin::storage
