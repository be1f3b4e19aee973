#include "actors/ingest/ingest_probe.hpp"

namespace healthtwin::actors {

std::string_view reason_label(rejection_reason r) {
  static constexpr std::array<std::string_view, rejection_reasons> names{
      "unspecified",    "invalid_name", "unknown_device",   "invalid_metric",
      "metric_not_supported", "not_finite", "out_of_range",  "future_timestamp",
      "invalid_timestamp",    "invalid_sequence", "duplicate", "outside_window",
      "decommissioned", "unavailable"};
  auto i = static_cast<size_t>(r);
  return i < names.size() ? names[i] : "unspecified";
}

}  // namespace healthtwin::actors
