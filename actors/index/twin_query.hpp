#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/index/twin_index.hpp"

namespace healthtwin::actors {

/// A parsed twin filter: the AIP-160 subset over patient summaries.
///
///   filter     := [expr]                      (empty: every patient)
///   expr       := sequence { "AND" sequence }
///   sequence   := factor { "OR" factor }      (OR binds tighter, as in AIP-160)
///   factor     := ["NOT" | "-"] ( "(" expr ")" | comparison )
///   comparison := field op value              op: = != < <= > >=
///
/// Fields: name, ward, bed (strings, quoted; a trailing * matches a
/// prefix), news2, alerts.count (whole numbers), news2.band (LOW,
/// LOW_MEDIUM, MEDIUM, HIGH), alerts.priority (NONE, LOW, MEDIUM, HIGH; the
/// highest open alert), news2.complete (true, false). A patient that was
/// never scored matches no comparison on news2 fields.
class twin_filter {
public:
  /// Parses `text`; on failure nullopt, and `error` says what and where.
  static std::optional<twin_filter> parse(std::string_view text, std::string& error);

  bool matches(std::string_view name, const patient_summary& s) const;

  twin_filter();
  ~twin_filter();
  twin_filter(twin_filter&&) noexcept;
  twin_filter& operator=(twin_filter&&) noexcept;

  struct node;  // the expression tree; its root is the last node

private:
  std::vector<node> nodes_;
};

/// A parsed ordering: "field [asc|desc] {, field [asc|desc]}" over name,
/// ward, bed, news2, alerts.priority, alerts.count. Ties go by name.
class twin_order {
public:
  static std::optional<twin_order> parse(std::string_view text, std::string& error);

  /// Strict weak order for std::sort.
  bool before(const std::pair<std::string, patient_summary>& a,
              const std::pair<std::string, patient_summary>& b) const {
    return before(a.first, a.second, b.first, b.second);
  }
  /// The same on a name and summary held elsewhere (the twin index's own).
  bool before(std::string_view a_name, const patient_summary& a, std::string_view b_name,
              const patient_summary& b) const;

private:
  struct key {
    int field;
    bool descending;
  };
  std::vector<key> keys_;
};

/// Limits on a filter's text and shape: hostile filters cost bounded time.
constexpr size_t max_filter_bytes = 2'000;
constexpr size_t max_filter_comparisons = 64;
constexpr size_t max_filter_depth = 16;

}  // namespace healthtwin::actors
