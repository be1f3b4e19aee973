#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "storage/store.hpp"

namespace healthtwin::storage {

/// Alert records, the index of active alerts and the alert event log
/// (column family `alerts`). Records and events are serialized by the
/// alert hub and stored sealed with their owner's data key. Thread-safe.
class alert_table {
public:
  explicit alert_table(store& s) : store_(s) {}

  caf::expected<std::optional<std::string>> get(std::string_view patient,
                                                std::string_view alert_id);

  /// Adds the record and, atomically with it, marks the alert active or not.
  /// The record is sealed with its owner's data key (store::seal).
  caf::error put(write_batch& batch, std::string_view patient, std::string_view alert_id,
                 std::string_view record, bool active);

  /// Adds an event at `sequence` to the event log, sealed with its owner's
  /// (patient's or device's) data key.
  caf::error put_event(write_batch& batch, uint64_t sequence, std::string_view owner,
                       std::string_view event);

  /// Highest event sequence written; 0 when none.
  caf::expected<uint64_t> last_event_sequence();

  /// Events with sequence > after, in order, until fn returns false. Events
  /// of erased patients are skipped.
  caf::error scan_events(uint64_t after,
                         const std::function<bool(uint64_t, std::string_view)>& fn);

  /// Every active alert record (those of erased patients skipped); only
  /// those of `shard` when it is set (a shard taken over from another member).
  caf::error scan_active(const std::function<void(std::string_view record)>& fn,
                         std::optional<uint32_t> shard = std::nullopt);

  /// Adds (or replaces) the silence of a patient's metric ("" = all).
  void put_silence(write_batch& batch, std::string_view patient, std::string_view metric,
                   std::string_view record);
  void erase_silence(write_batch& batch, std::string_view patient, std::string_view metric);
  /// Every stored silence (only those of `shard` when it is set).
  caf::error scan_silences(const std::function<void(std::string_view record)>& fn,
                           std::optional<uint32_t> shard = std::nullopt);

private:
  store& store_;
};

}  // namespace healthtwin::storage
