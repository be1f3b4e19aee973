#include "actors/models/rollout_plan.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace healthtwin::models {

namespace {

bool finished(ota_state s) {
  return s == ota_state::installed || s == ota_state::failed || s == ota_state::rolled_back;
}

bool printable(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return false;
  return true;
}

}  // namespace

std::optional<std::string> check(const rollout_spec& s) {
  if (s.firmware.empty() || s.firmware.size() > 64 || !printable(s.firmware))
    return std::string{"firmware: 1-64 characters without control characters"};
  if (s.waves_percent.empty() || s.waves_percent.size() > 10 || s.waves_percent.back() != 100)
    return std::string{"waves_percent: 1 to 10 ascending shares of the devices, the last 100"};
  uint32_t last = 0;
  for (auto p : s.waves_percent) {
    if (p <= last || p > 100)
      return std::string{"waves_percent: each above the one before, 1..100"};
    last = p;
  }
  if (!(s.max_failure_ratio >= 0 && s.max_failure_ratio <= 1))
    return std::string{"max_failure_ratio: 0..1"};
  return std::nullopt;
}

std::string_view to_string(ota_state s) noexcept {
  switch (s) {
    case ota_state::pending: return "pending";
    case ota_state::gated: return "gated";
    case ota_state::downloading: return "downloading";
    case ota_state::installed: return "installed";
    case ota_state::failed: return "failed";
    case ota_state::rolled_back: return "rolled_back";
  }
  return "unknown";
}

ota_state device_state(const rollout_spec& s, bool targeted, const ota_report& r, std::string& reason) {
  reason.clear();
  if (r.firmware == s.firmware)
    return ota_state::installed;
  if (!targeted)
    return ota_state::pending;
  if (r.state == "failed" || r.state == "rolled_back") {
    reason = r.error.empty() ? "the device reported " + r.state : r.error.substr(0, 256);
    return r.state == "failed" ? ota_state::failed : ota_state::rolled_back;
  }
  return ota_state::downloading;
}

std::optional<std::string> safety_gate(const care_context& c) {
  if (!c.assigned || c.clinician_override)
    return std::nullopt;
  if (c.open_alert)
    return std::string{"its patient has an open MEDIUM or HIGH alert"};
  if (!c.sole_source.empty()) {
    std::string vitals;
    for (auto m : c.sole_source)
      vitals += (vitals.empty() ? "" : ", ") + std::string{to_string(m)};
    return "it is the only source of " + vitals + " for its patient";
  }
  return std::nullopt;
}

rollout_decision plan_step(const rollout_spec& s, const std::vector<rollout_device>& devices, size_t wave) {
  rollout_decision d;
  auto n = devices.size();
  auto wave_end = [&](size_t k) {
    return static_cast<size_t>(std::ceil(static_cast<double>(n) * s.waves_percent[k] / 100.0));
  };
  size_t done = 0, bad = 0;
  for (auto& x : devices) {
    done += finished(x.state);
    bad += x.state == ota_state::failed || x.state == ota_state::rolled_back;
  }
  d.complete = done == n;
  d.wave = std::min(wave, s.waves_percent.size() - 1);
  // Close every wave whose devices (those not held back) all finished.
  for (;;) {
    bool open = false;
    for (size_t i = 0; i < wave_end(d.wave) && !open; ++i)
      open = !devices[i].gated && !finished(devices[i].state);
    if (open || d.wave + 1 == s.waves_percent.size())
      break;
    ++d.wave;
  }
  // Failures accepted by resuming after a pause count neither as failed
  // nor as finished any more.
  size_t accepted = std::min<size_t>(s.accepted_failures, bad);
  bad -= accepted;
  size_t counted = done - accepted;
  if (counted >= s.min_finished && counted > 0 &&
      static_cast<double>(bad) / static_cast<double>(counted) > s.max_failure_ratio) {
    d.paused = true;
    d.pause_reason = fmt::format("{} of {} finished devices failed ({:.0f} %), above the limit of {:.0f} %", bad,
                                 counted, 100.0 * static_cast<double>(bad) / static_cast<double>(counted),
                                 100.0 * s.max_failure_ratio);
    return d;
  }
  for (size_t i = 0; i < wave_end(d.wave); ++i)
    if (devices[i].state == ota_state::pending && !devices[i].gated)
      d.to_start.push_back(i);
  return d;
}

}  // namespace healthtwin::models
