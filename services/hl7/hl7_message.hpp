#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace healthtwin::hl7 {

/// Where in a message something is wrong, as HL7's ERR-2 (error location)
/// names it: segment id, its occurrence (1-based), field (0: the segment
/// itself), component (0: the whole field).
struct location {
  std::string segment;
  int occurrence = 1;
  int field = 0;
  int component = 0;

  /// "OBX[3]-5", "MSH-9.2", "PID".
  std::string to_string() const;
};

/// A message that cannot be read, or a field that is wrong.
struct error {
  location where;
  std::string what;  ///< names the problem; quotes at most a bounded prefix of what was sent
};

/// The delimiters a message declares in MSH-1 and MSH-2.
struct delimiters {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
};

/// One segment: its id and raw (still escaped) fields, numbered as HL7
/// numbers them. For MSH, field 1 is the field separator itself and field
/// 2 the encoding characters.
class segment {
public:
  segment(std::string id, std::vector<std::string_view> fields, int occurrence)
    : id_(std::move(id)), fields_(std::move(fields)), occurrence_(occurrence) {}

  const std::string& id() const noexcept { return id_; }
  int occurrence() const noexcept { return occurrence_; }
  size_t field_count() const noexcept { return fields_.size(); }

  /// Field `n` as sent (escaped, every repetition); empty if absent.
  std::string_view raw(size_t n) const noexcept { return n < fields_.size() ? fields_[n] : std::string_view{}; }

  location at(int field, int component = 0) const { return {id_, occurrence_, field, component}; }

private:
  std::string id_;
  std::vector<std::string_view> fields_;  // [0] is the id
  int occurrence_;
};

/// Limits on what a message may hold.
struct parse_limits {
  size_t max_segments = 2000;
  size_t max_fields = 256;  ///< per segment
};

/// A parsed HL7 v2 message (ER7, "pipe and hat" encoding). Owns its text.
/// Strict: it must begin with MSH; the delimiters must be five distinct
/// punctuation characters; segment ids are three upper-case letters or
/// digits. Segments end with CR (a LF after it, or alone, is tolerated).
class message {
public:
  static std::optional<message> parse(std::string text, error& why, const parse_limits& limits = {});

  message(message&&) noexcept = default;
  message& operator=(message&&) noexcept = default;

  const delimiters& delims() const noexcept { return delims_; }
  const std::vector<segment>& segments() const noexcept { return segments_; }
  const segment& msh() const noexcept { return segments_.front(); }
  const std::string& text() const noexcept { return *text_; }

  /// Component `c` (1-based; 0: the whole field) of the first repetition of
  /// field `f` of `s`, with escape sequences resolved; subcomponents stay
  /// joined by the subcomponent separator. nullopt with `why` set when an
  /// escape sequence is malformed.
  std::optional<std::string> get(const segment& s, int f, int c, error& why) const;

  /// As get(), for fields whose escapes were already checked by parse():
  /// never fails (a malformed escape is kept as sent).
  std::string value(const segment& s, int f, int c = 0) const;

private:
  message() = default;
  std::unique_ptr<std::string> text_;  // stable address: segments view into it
  delimiters delims_;
  std::vector<segment> segments_;
};

/// Resolves HL7 escape sequences in `raw`: F S T R E (the delimiters), Xhh
/// (bytes in hex); H and N (highlighting) are dropped. nullopt on a
/// malformed or unknown sequence.
std::optional<std::string> unescape(std::string_view raw, const delimiters& d);

/// Escapes `text` for a field of a message with delimiters `d`.
std::string escape(std::string_view text, const delimiters& d);

}  // namespace healthtwin::hl7
