#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace healthtwin::models {

/// How much of a client's input an error message may quote: enough to
/// recognise it, never enough to grow a reply past a client's metadata limit
/// (gRPC clients refuse trailers over 8 KiB by default).
inline constexpr size_t max_quoted_bytes = 64;

/// `text` for an error message that quotes what a client sent: in single
/// quotes, at most `max` bytes of it (cut before a UTF-8 continuation byte),
/// control characters shown as '?', and "... (N bytes)" after a cut, so the
/// reader knows it was cut and how long the input was. Pure.
std::string quoted_input(std::string_view text, size_t max = max_quoted_bytes);

/// At most `max` bytes of `text` (cut before a UTF-8 continuation byte),
/// with "..." appended when cut: for a message or field name built from
/// several parts, as a last bound before it leaves the node.
std::string bounded(std::string_view text, size_t max);

}  // namespace healthtwin::models
