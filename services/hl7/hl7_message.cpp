#include "services/hl7/hl7_message.hpp"

#include <cctype>

#include "actors/models/quoted.hpp"

namespace healthtwin::hl7 {

namespace {

bool is_delimiter_char(char c) {
  return std::ispunct(static_cast<unsigned char>(c)) != 0;
}

bool valid_segment_id(std::string_view id) {
  if (id.size() != 3 || !std::isupper(static_cast<unsigned char>(id[0])))
    return false;
  for (char c : id)
    if (!std::isupper(static_cast<unsigned char>(c)) && !std::isdigit(static_cast<unsigned char>(c)))
      return false;
  return true;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// Splits `text` at `sep`.
std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    auto end = text.find(sep, start);
    out.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos)
      return out;
    start = end + 1;
  }
}

// Component `c` (0: all) of the first repetition of `raw`.
std::string_view component_of(std::string_view raw, int c, const delimiters& d) {
  raw = raw.substr(0, raw.find(d.repetition));
  if (c <= 0)
    return raw;
  auto parts = split(raw, d.component);
  return static_cast<size_t>(c) <= parts.size() ? parts[static_cast<size_t>(c) - 1] : std::string_view{};
}

}  // namespace

std::string location::to_string() const {
  std::string s = segment;
  if (occurrence > 1)
    s += "[" + std::to_string(occurrence) + "]";
  if (field > 0)
    s += "-" + std::to_string(field);
  if (component > 0)
    s += "." + std::to_string(component);
  return s;
}

std::optional<std::string> unescape(std::string_view raw, const delimiters& d) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != d.escape) {
      out += raw[i];
      continue;
    }
    auto end = raw.find(d.escape, i + 1);
    if (end == std::string_view::npos || end == i + 1)
      return std::nullopt;
    auto seq = raw.substr(i + 1, end - i - 1);
    if (seq == "F")
      out += d.field;
    else if (seq == "S")
      out += d.component;
    else if (seq == "T")
      out += d.subcomponent;
    else if (seq == "R")
      out += d.repetition;
    else if (seq == "E")
      out += d.escape;
    else if (seq == "H" || seq == "N")
      ;  // highlighting on/off: no meaning for a value
    else if (seq[0] == 'X' && seq.size() >= 3 && seq.size() % 2 == 1) {
      for (size_t k = 1; k < seq.size(); k += 2) {
        int hi = hex_digit(seq[k]), lo = hex_digit(seq[k + 1]);
        if (hi < 0 || lo < 0)
          return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
      }
    } else {
      return std::nullopt;
    }
    i = end;
  }
  return out;
}

std::string escape(std::string_view text, const delimiters& d) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == d.escape)
      out += std::string{d.escape} + 'E' + d.escape;
    else if (c == d.field)
      out += std::string{d.escape} + 'F' + d.escape;
    else if (c == d.component)
      out += std::string{d.escape} + 'S' + d.escape;
    else if (c == d.subcomponent)
      out += std::string{d.escape} + 'T' + d.escape;
    else if (c == d.repetition)
      out += std::string{d.escape} + 'R' + d.escape;
    else if (c == '\r' || c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

std::optional<message> message::parse(std::string text, error& why, const parse_limits& limits) {
  message m;
  m.text_ = std::make_unique<std::string>(std::move(text));
  std::string_view all{*m.text_};
  if (all.size() < 8 || all.substr(0, 3) != "MSH") {
    why = {{"MSH", 1, 0, 0}, "the message must begin with an MSH segment, began " + models::quoted_input(all.substr(0, 8))};
    return std::nullopt;
  }
  auto& d = m.delims_;
  d.field = all[3];
  auto enc_end = all.find(d.field, 4);
  auto enc = all.substr(4, enc_end == std::string_view::npos ? std::string_view::npos : enc_end - 4);
  if (!is_delimiter_char(d.field) || enc.size() < 4 || enc.size() > 5) {
    why = {{"MSH", 1, 2, 0}, "MSH-1 and MSH-2 must declare the delimiters (as |^~\\&), were " +
                                 models::quoted_input(all.substr(3, 6))};
    return std::nullopt;
  }
  d.component = enc[0];
  d.repetition = enc[1];
  d.escape = enc[2];
  d.subcomponent = enc[3];
  std::string seen{d.field};
  for (char c : enc) {
    if (!is_delimiter_char(c) || seen.find(c) != std::string::npos) {
      why = {{"MSH", 1, 2, 0}, "MSH-2: the encoding characters must be distinct punctuation, were " +
                                   models::quoted_input(enc)};
      return std::nullopt;
    }
    seen += c;
  }

  std::vector<std::pair<std::string, int>> counts;
  auto occurrence_of = [&](const std::string& id) {
    for (auto& [name, n] : counts)
      if (name == id)
        return ++n;
    counts.emplace_back(id, 1);
    return 1;
  };
  for (auto line : split(all, '\r')) {
    while (!line.empty() && line.front() == '\n')
      line.remove_prefix(1);
    while (!line.empty() && line.back() == '\n')
      line.remove_suffix(1);
    // A bare LF between segments (some senders' line ends) separates too.
    for (auto seg : split(line, '\n')) {
      if (seg.empty())
        continue;
      if (m.segments_.size() >= limits.max_segments) {
        why = {{std::string{seg.substr(0, 3)}, 0, 0, 0},
               "the message has more than " + std::to_string(limits.max_segments) + " segments"};
        return std::nullopt;
      }
      auto id = std::string{seg.substr(0, 3)};
      if (!valid_segment_id(id) || (seg.size() > 3 && seg[3] != d.field)) {
        why = {{"", static_cast<int>(m.segments_.size()) + 1, 0, 0},
               "segment " + std::to_string(m.segments_.size() + 1) +
                   " must begin with a segment id of three upper-case letters or digits, began " +
                   models::quoted_input(seg.substr(0, 8))};
        return std::nullopt;
      }
      if (id == "MSH" && !m.segments_.empty()) {
        why = {{"MSH", 2, 0, 0}, "a second MSH segment: one message per frame"};
        return std::nullopt;
      }
      int occurrence = occurrence_of(id);
      std::vector<std::string_view> fields;
      if (id == "MSH") {
        // MSH-1 is the separator itself; MSH-2 onwards follow it.
        fields.push_back(seg.substr(0, 3));
        fields.push_back(seg.substr(3, 1));
        for (auto f : split(seg.substr(4), d.field))
          fields.push_back(f);
      } else {
        fields = split(seg, d.field);
      }
      if (fields.size() > limits.max_fields + 1) {
        why = {{id, occurrence, 0, 0}, "more than " + std::to_string(limits.max_fields) + " fields"};
        return std::nullopt;
      }
      for (size_t f = (id == "MSH" ? 3 : 1); f < fields.size(); ++f)
        if (fields[f].find(d.escape) != std::string_view::npos && !unescape(fields[f], d)) {
          why = {{id, occurrence, static_cast<int>(f), 0},
                 "a malformed escape sequence in " + models::quoted_input(fields[f])};
          return std::nullopt;
        }
      m.segments_.emplace_back(std::move(id), std::move(fields), occurrence);
    }
  }
  return m;
}

std::optional<std::string> message::get(const segment& s, int f, int c, error& why) const {
  if (f == 1 && s.id() == "MSH")
    return std::string{s.raw(1)};
  if (f == 2 && s.id() == "MSH")
    return std::string{s.raw(2)};
  auto raw = component_of(s.raw(static_cast<size_t>(f)), c, delims_);
  auto v = unescape(raw, delims_);
  if (!v)
    why = {s.at(f, c), "a malformed escape sequence in " + models::quoted_input(raw)};
  return v;
}

std::string message::value(const segment& s, int f, int c) const {
  error ignored;
  if (auto v = get(s, f, c, ignored))
    return std::move(*v);
  return std::string{component_of(s.raw(static_cast<size_t>(f)), c, delims_)};
}

}  // namespace healthtwin::hl7
