#include "storage/series_codec.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace healthtwin::storage {

namespace {

constexpr uint8_t chunk_format = 1;
constexpr uint8_t same_value = 0xFF;

uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
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

uint64_t bits_of(double d) {
  return std::bit_cast<uint64_t>(d);
}

// Streaming decoder state shared by decode_body and restore.
struct decoder {
  int64_t prev_ms = 0;
  int64_t prev_delta = 0;
  uint64_t prev_bits = 0;
  uint32_t index = 0;

  bool next(std::string_view& in, sample& s) {
    uint64_t raw;
    if (!get_varint(in, raw))
      return false;
    if (index == 0) {
      s.time_ms = unzigzag(raw);
    } else {
      auto delta = prev_delta + unzigzag(raw);
      s.time_ms = prev_ms + delta;
      prev_delta = delta;
    }
    prev_ms = s.time_ms;

    if (in.empty())
      return false;
    auto control = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    uint64_t x = 0;
    if (control != same_value) {
      unsigned lead = control >> 4, trail = control & 0x0F;
      if (lead + trail > 7)
        return false;
      unsigned n = 8 - lead - trail;
      if (in.size() < n)
        return false;
      for (unsigned i = 0; i < n; ++i)
        x = (x << 8) | static_cast<uint8_t>(in[i]);
      in.remove_prefix(n);
      x <<= trail * 8;
    }
    prev_bits ^= x;
    s.value = std::bit_cast<double>(prev_bits);
    ++index;
    return true;
  }
};

}  // namespace

void series_chunk_builder::append(int64_t time_ms, double value) {
  if (count_ == 0) {
    put_varint(body_, zigzag(time_ms));
    min_ms_ = max_ms_ = time_ms;
  } else {
    auto delta = time_ms - prev_ms_;
    // The second sample stores its plain delta: prev_delta_ starts at 0.
    put_varint(body_, zigzag(delta - prev_delta_));
    prev_delta_ = delta;
    min_ms_ = std::min(min_ms_, time_ms);
    max_ms_ = std::max(max_ms_, time_ms);
  }
  prev_ms_ = time_ms;

  auto bits = bits_of(value);
  auto x = bits ^ prev_bits_;
  prev_bits_ = bits;
  if (x == 0) {
    body_.push_back(static_cast<char>(same_value));
  } else {
    unsigned lead = static_cast<unsigned>(std::countl_zero(x)) / 8;
    unsigned trail = static_cast<unsigned>(std::countr_zero(x)) / 8;
    body_.push_back(static_cast<char>((lead << 4) | trail));
    unsigned n = 8 - lead - trail;
    auto payload = x >> (trail * 8);
    for (unsigned i = n; i-- > 0;)
      body_.push_back(static_cast<char>(payload >> (i * 8)));
  }
  ++count_;
}

std::string series_chunk_builder::finish() const {
  std::string out;
  out.reserve(body_.size() + 24);
  out.push_back(static_cast<char>(chunk_format));
  put_varint(out, count_);
  put_varint(out, zigzag(min_ms_));
  put_varint(out, static_cast<uint64_t>(max_ms_ - min_ms_));
  out.append(body_);
  return out;
}

bool series_chunk_builder::restore(std::string_view body, series_chunk_builder& out) {
  out = series_chunk_builder{};
  decoder d;
  sample s{};
  while (!body.empty()) {
    if (!d.next(body, s))
      return false;
    out.append(s.time_ms, s.value);
  }
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
  decoder d;
  sample s{};
  for (uint32_t i = 0; i < count; ++i) {
    if (!d.next(body, s))
      return false;
    fn(s);
  }
  return body.empty();
}

bool decode_chunk(std::string_view chunk, const std::function<void(sample)>& fn) {
  chunk_header h;
  size_t offset = 0;
  if (!read_chunk_header(chunk, h, &offset))
    return false;
  return decode_body(chunk.substr(offset), h.count, fn);
}

}  // namespace healthtwin::storage
