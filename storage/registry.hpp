#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "actors/models/metric.hpp"
#include "actors/models/twin_name.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

/// A registered patient.
struct patient_record {
  std::string name;  ///< tenants/{t}/patients/{p}
  std::string ward;
  std::string bed;
  bool spo2_scale2 = false;
  std::vector<std::string> devices;  ///< attached devices, in attach order
  int64_t create_time_ms = 0;
  std::string home_region;  ///< data residency region; empty: the node's own
  uint64_t version = 0;     ///< 1 on create, +1 on every change
};

/// A device configuration (desired or reported).
struct device_config {
  std::map<std::string, std::string> settings;
  std::string firmware;
  uint64_t version = 0;
  int64_t update_time_ms = 0;
};

/// A registered device.
struct device_record {
  std::string name;  ///< tenants/{t}/devices/{d}
  models::device_type type = models::device_type::bedside_monitor;
  std::string patient;  ///< attached patient; empty if none
  int64_t create_time_ms = 0;
  int64_t decommission_time_ms = 0;  ///< 0: in service
  device_config desired;   ///< what operators want
  device_config reported;  ///< what the device says it runs
};

/// A device record as stored (an internal::DeviceRecord), and back:
/// invalid_record when the bytes do not parse.
std::string encode_device(const device_record& d);
caf::expected<device_record> decode_device(std::string_view bytes);

/// Patients and devices (column family `registry`). Reads are safe from any
/// thread; writes go through a write_batch (the ingest sequencer is the only
/// writer, so checks and writes do not race).
class registry {
public:
  explicit registry(store& s) : store_(s) {}

  caf::expected<std::optional<patient_record>> get_patient(std::string_view name);
  caf::expected<std::optional<device_record>> get_device(std::string_view name);

  /// Visits every patient record, shard by shard (the twin index's seed);
  /// only those of the shards `include` accepts when it is set.
  caf::error for_each_patient(const std::function<void(const patient_record&)>& fn,
                              const std::function<bool(uint32_t shard)>& include = {});

  /// Visits every device record (firmware rollouts pick theirs by type).
  caf::error for_each_device(const std::function<void(const device_record&)>& fn);

  void put(write_batch& batch, const patient_record& p);
  void put(write_batch& batch, const device_record& d);
  void erase_patient(write_batch& batch, std::string_view name);

private:
  caf::error scan_kind(models::twin_kind kind, const std::function<bool(uint32_t shard)>& include,
                       const std::function<caf::error(std::string_view bytes)>& fn);

  store& store_;
};

}  // namespace healthtwin::storage
