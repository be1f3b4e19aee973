#pragma once
// Firmware rollouts (issue 22, ADR 0028): what a device's state is from what
// it reports, whether the patient safety gate holds it back, and which
// devices a rollout starts next, wave by wave, pausing when too many fail.
// Pure functions: the node's rollout manager feeds them what it reads.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/models/metric.hpp"

namespace healthtwin::models {

/// What a rollout asks for.
struct rollout_spec {
  std::string firmware;                 ///< the version devices move to
  std::vector<uint32_t> waves_percent;  ///< cumulative share of the devices per wave, ascending, the last 100
  double max_failure_ratio = 0.1;       ///< pause when failed / finished goes above it ...
  uint32_t min_finished = 5;            ///< ... once at least this many devices finished
  uint32_t accepted_failures = 0;       ///< failures an operator accepted by resuming: not counted again
};

/// The fields wrong in `s`, named ("firmware: ..."); nullopt when it is valid.
std::optional<std::string> check(const rollout_spec& s);

/// Where one device is in a rollout.
enum class ota_state : uint8_t { pending, gated, downloading, installed, failed, rolled_back };
std::string_view to_string(ota_state s) noexcept;

/// What a device reported (its shadow's reported state): its firmware and
/// the settings "ota.state" (downloading, installing, failed, rolled_back)
/// and "ota.error".
struct ota_report {
  std::string firmware;
  std::string state;
  std::string error;
};

/// A device's state from its report, once the rollout `targeted` it (set its
/// desired firmware); `reason` says why it failed or rolled back.
ota_state device_state(const rollout_spec& s, bool targeted, const ota_report& r, std::string& reason);

/// What the safety gate knows of a device's patient.
struct care_context {
  bool assigned = false;             ///< the device is attached to a patient
  bool open_alert = false;           ///< the patient has an open MEDIUM or HIGH alert
  std::vector<metric> sole_source;   ///< monitored vitals no other device of the patient reported lately
  bool clinician_override = false;   ///< a clinician let this device update anyway
};

/// Why a device must not be updated now (its patient's care needs it), or
/// nullopt when it may be.
std::optional<std::string> safety_gate(const care_context& c);

/// One device of a rollout, in the rollout's fixed order (waves take the
/// first devices of that order).
struct rollout_device {
  ota_state state = ota_state::pending;
  bool gated = false;  ///< safety_gate() holds it back now
};

struct rollout_decision {
  size_t wave = 0;               ///< the wave now open (0-based)
  std::vector<size_t> to_start;  ///< devices to target now: pending, not gated, inside the open wave
  bool paused = false;           ///< too many failures: nothing new starts
  std::string pause_reason;
  bool complete = false;         ///< every device installed, failed or rolled back
};

/// The next step of a rollout at `wave`: a wave closes when each of its
/// devices that is not gated finished (gated ones wait, re-checked every
/// step, without holding later waves back).
rollout_decision plan_step(const rollout_spec& s, const std::vector<rollout_device>& devices, size_t wave);

}  // namespace healthtwin::models
