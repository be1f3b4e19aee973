#pragma once
// Alarm burden (issue 23): how many alerts a ward's patients raise per
// patient-day, by kind and priority, how long they wait for an
// acknowledgement, which patients and devices raise the most, and how many
// resolve without anyone acknowledging them — the figures alarm-fatigue
// work starts from (docs/alerts.md). Plain C++ over the alert event log.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/alerts/alert_hub.hpp"

namespace healthtwin::actors {

/// Upper edges of the time-to-acknowledge buckets (ms); one more bucket
/// holds what is beyond the last.
inline constexpr std::array<int64_t, 8> ack_bucket_edges_ms{10'000,  30'000,  60'000,    120'000,
                                                            300'000, 600'000, 1'800'000, 3'600'000};

/// One scope's figures (a ward, or the whole query).
struct alarm_burden_group {
  std::string ward;
  uint32_t patients = 0;  ///< the census: patients in the scope now
  uint64_t raised = 0;
  std::map<std::pair<models::alert_kind, models::priority>, uint64_t> by_kind_priority;
  std::vector<int64_t> ack_delays_ms;  ///< one per acknowledged alert, in no order
  std::array<uint64_t, ack_bucket_edges_ms.size() + 1> ack_buckets{};
  uint64_t resolved = 0;
  uint64_t resolved_unacknowledged = 0;
  uint64_t escalated = 0;

  uint64_t acknowledged() const noexcept { return ack_delays_ms.size(); }
  /// The p-quantile (0..1, nearest rank) of the times to acknowledge;
  /// nullopt when none was acknowledged.
  std::optional<int64_t> ack_quantile(double p) const;
};

/// A patient or device and the alerts it raised.
struct noisy_source {
  std::string name;
  std::string ward;
  uint64_t raised = 0;
};

struct alarm_burden_report {
  int64_t start_ms = 0, end_ms = 0;
  alarm_burden_group total;
  std::vector<alarm_burden_group> wards;  ///< by ward name
  std::vector<noisy_source> noisiest_patients, noisiest_devices;  ///< most first, ties by name
};

/// Reads alert events in log order and keeps what the report needs: the
/// alerts raised within [start_ms, end_ms) (node time of the event) that
/// `scope` matches (tenant, ward, patient, minimum priority), and what
/// became of them in any later event. Events before the window or of
/// other scopes are skipped.
class alarm_burden_builder {
public:
  alarm_burden_builder(alert_filter scope, int64_t start_ms, int64_t end_ms);

  void add(const alert_event& e);

  /// The report; `census` is the number of patients per ward now (wards
  /// outside the scope are ignored), `top` how many noisiest to list.
  alarm_burden_report finish(const std::map<std::string, uint32_t>& census, size_t top) &&;

private:
  struct tracked {
    std::string ward;
    int64_t raised_ms = 0;
    bool acknowledged = false, resolved = false, escalated = false;
  };
  alarm_burden_group& group(const std::string& ward);

  alert_filter scope_;
  int64_t start_ms_, end_ms_;
  std::unordered_map<std::string, tracked> alerts_;  // by alert name
  alarm_burden_group total_;
  std::map<std::string, alarm_burden_group> wards_;
  std::map<std::string, noisy_source> patients_, devices_;
};

}  // namespace healthtwin::actors
