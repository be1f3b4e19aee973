#include "actors/models/metric.hpp"

#include <array>

namespace healthtwin::models {

namespace {

struct metric_info {
  std::string_view name;
  std::string_view unit;
  metric_range range;
};

// Ranges are wide on purpose: they reject what no living patient (or working
// device) can produce, never an alarming but real value.
constexpr std::array<metric_info, metric_count + 1> metric_table{{
    {"unspecified", "", {0, 0, false}},
    {"heart_rate", "/min", {0, 350, false}},
    {"spo2", "%", {0, 100, false}},
    {"respiration_rate", "/min", {0, 120, false}},
    {"temperature", "Cel", {20.0, 45.0, false}},
    {"systolic_bp", "mm[Hg]", {0, 300, false}},
    {"diastolic_bp", "mm[Hg]", {0, 250, false}},
    {"glucose", "mg/dL", {10, 1500, false}},
    {"inhaler_actuation", "1", {0, 10, true}},
    {"infusion_rate", "mL/h", {0, 2000, false}},
    {"battery", "%", {0, 100, false}},
    {"consciousness", "{ACVPU}", {0, 4, true}},
    {"oxygen_flow", "L/min", {0, 60, false}},
    {"mean_arterial_pressure", "mm[Hg]", {0, 300, false}},
}};

constexpr uint32_t bit(metric m) { return 1u << static_cast<uint8_t>(m); }

// Which metrics each device type measures (battery is always allowed).
constexpr std::array<uint32_t, device_type_count + 1> device_metrics{{
    0,
    bit(metric::heart_rate) | bit(metric::spo2) | bit(metric::respiration_rate) |
        bit(metric::temperature) | bit(metric::systolic_bp) | bit(metric::diastolic_bp) |
        bit(metric::mean_arterial_pressure),
    bit(metric::heart_rate) | bit(metric::respiration_rate),
    bit(metric::spo2) | bit(metric::heart_rate),
    bit(metric::glucose),
    bit(metric::inhaler_actuation),
    bit(metric::infusion_rate),
    bit(metric::systolic_bp) | bit(metric::diastolic_bp) | bit(metric::mean_arterial_pressure) |
        bit(metric::heart_rate),
    0,
    bit(metric::consciousness) | bit(metric::oxygen_flow) | bit(metric::heart_rate) |
        bit(metric::spo2) | bit(metric::respiration_rate) | bit(metric::temperature) |
        bit(metric::systolic_bp) | bit(metric::diastolic_bp) | bit(metric::glucose) |
        bit(metric::mean_arterial_pressure),
}};

}  // namespace

std::optional<metric> metric_from_number(uint32_t n) noexcept {
  if (n == 0 || n > metric_count)
    return std::nullopt;
  return static_cast<metric>(n);
}

std::optional<device_type> device_type_from_number(uint32_t n) noexcept {
  if (n == 0 || n > device_type_count)
    return std::nullopt;
  return static_cast<device_type>(n);
}

std::string_view to_string(metric m) noexcept {
  auto i = static_cast<size_t>(m);
  return i < metric_table.size() ? metric_table[i].name : "unknown";
}

reading_quality effective_quality(metric m, double value, reading_quality q) noexcept {
  if (q != reading_quality::unspecified)
    return q;
  switch (m) {
    case metric::heart_rate:        // ECG leads off
    case metric::respiration_rate:  // impedance lost
    case metric::spo2:              // no probe
    case metric::systolic_bp:       // no arterial line, cuff not measuring
    case metric::diastolic_bp:
      return value == 0 ? reading_quality::no_signal : reading_quality::valid;
    default:
      return reading_quality::valid;
  }
}

std::string_view to_string(reading_quality q) noexcept {
  switch (q) {
    case reading_quality::unspecified: return "unspecified";
    case reading_quality::valid: return "valid";
    case reading_quality::no_signal: return "no_signal";
    case reading_quality::invalid: return "invalid";
    case reading_quality::unvalidated: return "unvalidated";
  }
  return "unknown";
}

std::string_view unit_of(metric m) noexcept {
  auto i = static_cast<size_t>(m);
  return i < metric_table.size() ? metric_table[i].unit : "";
}

metric_range range_of(metric m) noexcept {
  auto i = static_cast<size_t>(m);
  return i < metric_table.size() ? metric_table[i].range : metric_range{0, 0, false};
}

bool device_measures(device_type t, metric m) noexcept {
  if (m == metric::battery)
    return true;
  auto i = static_cast<size_t>(t);
  return i < device_metrics.size() && (device_metrics[i] & bit(m)) != 0;
}

}  // namespace healthtwin::models
