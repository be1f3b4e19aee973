#include "actors/models/quoted.hpp"

namespace healthtwin::models {

namespace {

// The longest prefix of `text` of at most `max` bytes that does not end
// inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, size_t max) {
  if (text.size() <= max)
    return text;
  auto n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80)
    --n;
  return text.substr(0, n);
}

}  // namespace

std::string quoted_input(std::string_view text, size_t max) {
  auto shown = utf8_prefix(text, max);
  std::string out;
  out.reserve(shown.size() + 24);
  out += '\'';
  for (char c : shown) {
    auto u = static_cast<unsigned char>(c);
    out += u < 0x20 || u == 0x7F ? '?' : c;
  }
  out += '\'';
  if (shown.size() < text.size())
    out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::string bounded(std::string_view text, size_t max) {
  if (text.size() <= max)
    return std::string{text};
  auto keep = max > 3 ? max - 3 : 0;
  return std::string{utf8_prefix(text, keep)} + "...";
}

}  // namespace healthtwin::models
