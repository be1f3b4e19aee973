#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <map>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "storage/store.hpp"

namespace healthtwin::storage {

/// How long a tenant's data is kept.
struct retention_policy {
  /// Raw readings (closed series chunks), by the newest sample's device
  /// time. Default 30 days.
  int64_t raw_readings_ms = int64_t{30} * 86'400'000;
  /// Resolved alerts and alert events, by resolve / event time. Default 6
  /// years (HIPAA documentation retention). Active alerts are never removed.
  int64_t alerts_ms = int64_t{6 * 365 + 2} * 86'400'000;
};

/// The node's default policy and per-tenant overrides.
struct retention_settings {
  retention_policy defaults;
  std::map<std::string, retention_policy, std::less<>> tenants;

  const retention_policy& of(std::string_view tenant) const {
    auto i = tenants.find(tenant);
    return i == tenants.end() ? defaults : i->second;
  }
};

/// What one sweep removed.
struct retention_report {
  uint64_t series_chunks = 0;
  uint64_t alerts = 0;
  uint64_t alert_events = 0;
};

/// Deletes every series chunk, resolved alert and alert event that is past
/// its tenant's retention at `now_ms` (injected: tests pass their own
/// clock). Deletes are tombstones that compaction turns into free space.
/// Safe to run while the node serves: it only touches closed chunks and
/// resolved alerts.
caf::expected<retention_report> enforce_retention(store& s, const retention_settings& settings,
                                                  int64_t now_ms);

/// Runs enforce_retention every `interval` on its own thread (node clock)
/// until destroyed; logs what each sweep removed (counts only, no names).
class retention_sweeper {
public:
  retention_sweeper(store& s, retention_settings settings, std::chrono::milliseconds interval);
  ~retention_sweeper();
  retention_sweeper(const retention_sweeper&) = delete;
  retention_sweeper& operator=(const retention_sweeper&) = delete;

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace healthtwin::storage
