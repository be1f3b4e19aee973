#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace healthtwin::models {

/// A measured quantity. Numbers equal healthtwin.v1.Metric so services can
/// translate with a range check. Units are fixed per metric.
enum class metric : uint8_t {
  heart_rate = 1,         ///< /min
  spo2 = 2,               ///< %
  respiration_rate = 3,   ///< /min
  temperature = 4,        ///< Cel
  systolic_bp = 5,        ///< mm[Hg]
  diastolic_bp = 6,       ///< mm[Hg]
  glucose = 7,            ///< mg/dL
  inhaler_actuation = 8,  ///< puffs per event
  infusion_rate = 9,      ///< mL/h
  battery = 10,           ///< %
  consciousness = 11,     ///< ACVPU code 0..4 (see acvpu)
  oxygen_flow = 12,       ///< L/min; 0 = room air
  mean_arterial_pressure = 13,  ///< mm[Hg]: the cuff's (NIBP) mean
};

/// Number of the highest metric; metric values are 1..metric_count.
inline constexpr uint8_t metric_count = 13;

/// ACVPU scale values carried by metric::consciousness.
enum class acvpu : uint8_t { alert = 0, confusion = 1, voice = 2, pain = 3, unresponsive = 4 };

/// Device categories; numbers equal healthtwin.v1.DeviceType.
enum class device_type : uint8_t {
  bedside_monitor = 1,
  wearable_ecg = 2,
  pulse_oximeter = 3,
  glucose_monitor = 4,
  smart_inhaler = 5,
  infusion_pump = 6,
  bp_cuff = 7,
  asset_tag = 8,
  observation_chart = 9,
};

inline constexpr uint8_t device_type_count = 9;

/// The plausible range of a metric: readings outside are rejected on ingest
/// as physiologically (or technically) impossible. Bounds are inclusive.
struct metric_range {
  double min;
  double max;
  bool integral;  ///< value must be a whole number (ACVPU, puffs)
};

/// Returns the metric for a wire number, or nullopt when unknown/unspecified.
std::optional<metric> metric_from_number(uint32_t n) noexcept;

/// Returns the device type for a wire number, or nullopt when unknown.
std::optional<device_type> device_type_from_number(uint32_t n) noexcept;

/// Short stable name ("heart_rate"), used in docs, errors and metric labels.
std::string_view to_string(metric m) noexcept;

/// UCUM unit of the metric ("/min", "%", "Cel", "mm[Hg]", "mg/dL", ...).
std::string_view unit_of(metric m) noexcept;

/// Accepted range; documented in docs/api.md.
metric_range range_of(metric m) noexcept;

/// True when a device of this type may report this metric (every type may
/// report its battery).
bool device_measures(device_type t, metric m) noexcept;

/// True when `m` is a vital sign attributed to the patient (everything but
/// battery).
inline bool is_patient_metric(metric m) noexcept { return m != metric::battery; }

/// What a device says of one reading. Numbers equal
/// healthtwin.v1.ReadingQuality (docs/api.md, "Frames and reading quality").
enum class reading_quality : uint8_t {
  /// Not said: a 0 on a channel where monitors send 0 for "no signal" (heart
  /// rate, respiration rate, SpO2, blood pressure) is no signal, anything
  /// else a measurement.
  unspecified = 0,
  valid = 1,        ///< a measurement (a 0 is a real 0)
  no_signal = 2,    ///< nothing measured: leads off, no probe, no line, cuff failed
  invalid = 3,      ///< measured, but marked invalid by the device (artefact)
  unvalidated = 4,  ///< not validated yet (HL7 OBX-11 'R'): stored, not charted
};
inline constexpr uint8_t reading_quality_count = 5;

/// The quality a reading is handled with: `q` with `unspecified` resolved
/// (never unspecified). Pure.
reading_quality effective_quality(metric m, double value, reading_quality q) noexcept;

/// True for readings that are charted and reach the clinical models.
inline bool charted(reading_quality q) noexcept { return q == reading_quality::valid; }

/// True for readings that say the signal is missing (no_signal, invalid):
/// they may raise a technical "no signal" alarm, never a clinical one.
inline bool signal_missing(reading_quality q) noexcept {
  return q == reading_quality::no_signal || q == reading_quality::invalid;
}

/// "valid", "no_signal", ...
std::string_view to_string(reading_quality q) noexcept;

}  // namespace healthtwin::models
