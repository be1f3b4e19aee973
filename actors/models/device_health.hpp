#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "actors/models/alert_condition.hpp"
#include "actors/models/alert_policy.hpp"
#include "actors/models/patient_model.hpp"

namespace healthtwin::models {

/// Health of the devices attached to one patient: offline (no data for
/// `device_offline_after_ms`, checked on a wall-clock tick, not only when
/// the next reading arrives), battery low, and clock drift. Technical
/// alarms: offline is MEDIUM (monitoring is lost), battery LOW at the
/// patient's setting and MEDIUM at 5 %, clock drift LOW.
///
/// Clock drift: per batch, the node's receive time minus the newest reading
/// time is the delivery delay plus the clock's error. It is sampled at most
/// every 15 s (8 samples kept); once 4 samples span 45 s, and only while the
/// device streams live — its data time advanced as the node's clock did
/// (within 10 % + 15 s), which a backfill of stored data after a gap does
/// not — the smallest delay (the promptest delivery) estimates the error; a
/// clock ahead shows as a negative estimate. Beyond `clock_drift_ms` either
/// way the alarm is raised; it clears below half of it. Readings keep their
/// device time.
///
/// Not thread-safe; owned by one patient twin.
class device_health {
public:
  /// The devices now attached (registry order). State of devices still
  /// attached is kept; a newly attached one counts as seen at `now_ms`.
  void set_devices(const std::vector<std::string>& names, int64_t now_ms);

  /// Drift beyond which a device's clock alarms (either way). 2 min.
  static constexpr int64_t clock_drift_ms = 120'000;

  /// Readings from `device` were committed at node time `receive_ms`; the
  /// newest of them was measured at device time `newest_ms` (0: none).
  void on_data(std::string_view device, int64_t receive_ms, int64_t newest_ms, std::vector<finding>& out);

  /// A battery reading of `device` at data time `t_ms`.
  void on_battery(std::string_view device, double percent, int64_t t_ms,
                  const patient_settings& s, std::vector<finding>& out);

  /// Raises or clears offline conditions at node time `now_ms`. Devices are
  /// not reported offline before `not_before_ms` (e.g. a restart's grace).
  void tick(int64_t now_ms, int64_t not_before_ms, const patient_settings& s,
            std::vector<finding>& out);

  /// The node time (ms) from which tick would report a device offline if
  /// no data comes: the earliest of the devices not reported offline yet
  /// (0: none). A passivated patient's shard wakes its twin then.
  int64_t next_offline_ms(int64_t not_before_ms, const patient_settings& s) const noexcept;

  /// Clears a device condition by hand (a clinician resolved its alert);
  /// it is raised again if it persists.
  void reset(alert_kind k, std::string_view device) noexcept;

  std::string encode() const;
  bool decode(std::string_view bytes);

  struct tracked {
    std::string name;
    int64_t last_receive_ms = 0;
    double battery = -1;  ///< -1: unknown
    alert_condition offline;
    alert_condition battery_condition;
    alert_condition clock_condition;
    /// Samples of (receive time, newest reading time), oldest first.
    std::array<std::pair<int64_t, int64_t>, 8> clock_samples{};
    uint8_t clock_samples_known = 0;
  };
  const std::vector<tracked>& devices() const noexcept { return devices_; }

private:
  static int64_t offline_due_ms(const tracked& d, int64_t not_before_ms,
                                const patient_settings& s) noexcept;
  tracked* find(std::string_view name) noexcept;
  std::vector<tracked> devices_;
};

}  // namespace healthtwin::models
