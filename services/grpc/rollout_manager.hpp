#pragma once
// The node's firmware rollouts (ADR 0028, docs/rollouts.md): each kept as a
// record in the store (meta "rollout/{tenant}/{id}", the v1.Rollout message
// itself) and stepped once a step interval by one thread. A step reads what
// every device reports and what its patient's care needs (rollout_facts),
// applies the rules of actors/models/rollout_plan, and sets the desired
// firmware of the devices to start. RolloutService calls into it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/expected.hpp>
#include <grpcpp/grpcpp.h>

#include "actors/models/metric.hpp"
#include "healthtwin/v1/rollout.pb.h"
#include "storage/registry.hpp"

namespace healthtwin::storage {
class store;
}

namespace healthtwin::services {

/// What a patient's care says about its devices now.
struct patient_care {
  bool open_alert = false;  ///< an open MEDIUM or HIGH alert
  /// The device that supplied the patient's latest reading of each vital
  /// measured within the last 15 minutes.
  std::vector<std::pair<models::metric, std::string>> current_sources;
};

/// Where a rollout's facts come from and where its decisions go (the node's
/// registry, twins and alerts; a fake in the unit tests).
class rollout_facts {
public:
  virtual ~rollout_facts() = default;
  /// A device's registry record; nullopt when it is not registered.
  virtual caf::expected<std::optional<storage::device_record>> device(const std::string& name) = 0;
  virtual caf::expected<patient_care> care(const std::string& patient) = 0;
  /// Sets the device's desired firmware (its desired settings stay).
  virtual caf::error target(const storage::device_record& d, const std::string& firmware) = 0;
  /// The tenant's devices of `type` in service, by name.
  virtual caf::expected<std::vector<std::string>> devices_of_type(const std::string& tenant,
                                                                   models::device_type type) = 0;
};

class rollout_manager {
public:
  static constexpr size_t max_devices = 10'000;
  static constexpr size_t max_kept = 256;  ///< rollouts kept per node (the oldest ended go first)

  rollout_manager(storage::store& db, rollout_facts& facts, std::chrono::milliseconds step);
  ~rollout_manager();
  rollout_manager(const rollout_manager&) = delete;
  rollout_manager& operator=(const rollout_manager&) = delete;

  /// Loads the stored rollouts and starts stepping them (after `ready`
  /// turns true, when set: the node's recovery).
  caf::error start(const std::atomic<bool>* ready = nullptr);
  void stop();

  // The calls of RolloutService (fields already checked by it, `name` is
  // tenants/{t}/rollouts/{id}): the rollout after the call in `out`, or
  // what is wrong as the status the caller gets.

  /// Creates and starts a rollout from `spec`'s firmware, target, waves and
  /// limits; INVALID_ARGUMENT names a wrong field.
  grpc::Status create(const std::string& tenant, const std::string& name, const v1::Rollout& spec,
                      const std::string& by, int64_t now_ms, v1::Rollout* out);
  grpc::Status get(const std::string& name, v1::Rollout* out) const;
  std::vector<v1::Rollout> list(const std::string& tenant) const;  ///< newest first, without devices
  grpc::Status pause(const std::string& name, const std::string& by, int64_t now_ms, v1::Rollout* out);
  grpc::Status resume(const std::string& name, int64_t now_ms, v1::Rollout* out);
  grpc::Status cancel(const std::string& name, const std::string& by, int64_t now_ms, v1::Rollout* out);
  grpc::Status override_gate(const std::string& name, const std::string& device, const std::string& by,
                             const std::string& reason, int64_t now_ms, v1::Rollout* out);
  /// The device's latest rollout, if it is in one.
  std::optional<v1::DeviceRollout> of_device(const std::string& device) const;

  /// One step of every running or paused rollout (the thread calls it;
  /// tests call it directly).
  void step(int64_t now_ms);

private:
  struct gathered;
  void run(const std::atomic<bool>* ready);
  gathered gather(const v1::Rollout& r);
  void apply(v1::Rollout& r, const gathered& g, int64_t now_ms, std::vector<size_t>& to_start);
  grpc::Status keep(const v1::Rollout& r);
  void index(const v1::Rollout& r);
  grpc::Status find(const std::string& name, v1::Rollout*& out);
  template <class Change>
  grpc::Status change(const std::string& name, int64_t now_ms, v1::Rollout* out, Change&& fn);

  storage::store& db_;
  rollout_facts& facts_;
  std::chrono::milliseconds step_;
  mutable std::mutex mtx_;
  std::map<std::string, v1::Rollout> rollouts_;                // by name
  std::unordered_map<std::string, std::string> device_index_;  // device -> latest rollout
  std::mutex step_mtx_;                                        // one step at a time
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace healthtwin::services
