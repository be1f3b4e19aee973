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
#include <functional>
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

  struct device_fact {
    grpc::Status status;  ///< not OK: not read now (its owner not reached)
    std::optional<storage::device_record> record;  ///< nullopt: not registered
  };
  /// The registry records of `names`, in their order (in a cluster, one
  /// call per member that owns some).
  virtual std::vector<device_fact> devices(const std::vector<std::string>& names) = 0;
  /// The care of the patients that could be read.
  virtual std::unordered_map<std::string, patient_care> cares(const std::vector<std::string>& patients) = 0;
  /// Sets the device's desired firmware (its desired settings stay).
  virtual grpc::Status target(const storage::device_record& d, const std::string& firmware) = 0;
  /// The tenant's devices of `type` in service, by name, into `out`; in a
  /// cluster, every member's (UNAVAILABLE when one cannot be asked).
  virtual grpc::Status devices_of_type(const std::string& tenant, models::device_type type,
                                       std::vector<std::string>& out) = 0;
  /// The latest rollout each of `devices` is in among those other members
  /// hold, into `out` (none on a single node, the default); UNAVAILABLE when
  /// a member could not be asked.
  virtual grpc::Status rollouts_elsewhere(const std::vector<std::string>& devices,
                                          std::vector<v1::DeviceRollout>& out);
};

/// Which rollout names (tenants/{t}/rollouts/{id}) a call is about: those
/// of some shards.
using rollout_filter = std::function<bool(const std::string& name)>;

class rollout_manager {
public:
  static constexpr size_t max_devices = 10'000;
  static constexpr size_t max_kept = 256;  ///< rollouts kept per node (the oldest ended go first)

  /// Holds the rollouts `holds` accepts (in a cluster, those of the shards
  /// this member owns; all when unset).
  rollout_manager(storage::store& db, rollout_facts& facts, std::chrono::milliseconds step,
                  rollout_filter holds = {});
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

  /// The latest rollout of each of `devices` this node holds.
  std::vector<v1::DeviceRollout> of_devices(const std::vector<std::string>& devices) const;

  // A hand-off of the shards `in` accepts (services/peer/shard_handoff):
  /// before their records are streamed away, stops stepping and changing
  /// their rollouts and forgets them; calls about them answer UNAVAILABLE
  /// until take_up() or gone().
  void let_go(const rollout_filter& in);
  /// Loads their stored rollouts: the shards were gained, or a hand-off of
  /// them was abandoned.
  caf::error take_up(const rollout_filter& in);
  /// They were given away: their calls go to the new holder.
  void gone(const rollout_filter& in);

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
  void reindex();  // device_index_ from every rollout held, oldest first
  /// The stored rollouts `in` accepts (held here).
  caf::expected<std::vector<v1::Rollout>> load(const rollout_filter& in);
  static constexpr std::string_view record_kind = "rollout";
  static std::string key_of(const std::string& name);  // the record's key
  grpc::Status find(const std::string& name, v1::Rollout*& out);
  template <class Change>
  grpc::Status change(const std::string& name, int64_t now_ms, v1::Rollout* out, Change&& fn);

  storage::store& db_;
  rollout_facts& facts_;
  std::chrono::milliseconds step_;
  rollout_filter holds_;
  mutable std::mutex mtx_;
  rollout_filter moving_;  // the shards of a hand-off in progress
  std::map<std::string, v1::Rollout> rollouts_;                // by name
  std::unordered_map<std::string, std::string> device_index_;  // device -> latest rollout
  std::mutex step_mtx_;                                        // one step at a time
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace healthtwin::services
