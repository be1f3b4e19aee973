#pragma once
// Private to services/grpc: what every service implementation shares — the
// API's state and its three parts: the call frame (call_frame.hpp), owner
// routing (owner_routing.hpp) and the actor bridge (actor_bridge.hpp).

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actors/index/twin_query.hpp"
#include "services/grpc/actor_bridge.hpp"
#include "services/grpc/call_frame.hpp"
#include "services/grpc/owner_routing.hpp"
#include "services/grpc/watch_pump.hpp"
#include "storage/registry.hpp"

namespace healthtwin::services {

/// Other members' rollouts of the devices whose twins were read lately (a
/// cluster; rollout_facts.cpp): a read within `ttl` of the last one that
/// asked for a device asks no member again (watches poll every 100 ms at
/// most).
struct remote_rollout_cache {
  static constexpr std::chrono::milliseconds ttl{1000};
  static constexpr size_t max_entries = 10'000;  ///< all forgotten when full
  struct entry {
    std::chrono::steady_clock::time_point at;
    std::vector<v1::DeviceRollout> rollouts;
  };
  std::mutex mtx;
  std::unordered_map<std::string, entry> entries;
};

struct service_env : api_state, call_frame, owner_routing, actor_bridge {
  service_env()
      : call_frame(static_cast<api_state&>(*this)),
        owner_routing(static_cast<api_state&>(*this), static_cast<const call_frame&>(*this)),
        actor_bridge(static_cast<api_state&>(*this), static_cast<const call_frame&>(*this)) {}

  remote_rollout_cache remote_rollouts;
  /// Reads the twins of every watch when they change (twin_watch.cpp).
  watch_pump watches;
};

/// Whom a clinical action (acknowledge, resolve, silence, settings,
/// observations) is recorded as: a backend service names the clinician it
/// acts for in the request field (`stated`); anyone else acts as the token's
/// own subject, whatever the field says.
inline std::string acting_as(const rpc_call& rc, const std::string& stated) {
  if (rc.who && has(rc.who->roles, role::service) && !stated.empty())
    return stated;
  return rc.who ? rc.who->subject : stated;
}

/// acting_as(), checked as every recorded actor is: 1-128 characters
/// without control characters, else a violation of request field `field`.
inline std::string acting_as(const rpc_call& rc, const std::string& stated, const char* field,
                             std::vector<field_violation>& bad) {
  auto who = acting_as(rc, stated);
  if (!valid_label(who, 128))
    bad.push_back({field, "must be 1-128 characters without control characters"});
  return who;
}



/// OK when `name` (request field `field`) names a registered patient the
/// caller may reach: INVALID_ARGUMENT, PERMISSION_DENIED (checked before
/// existence, so other tenants learn nothing) or NOT_FOUND otherwise. Checked
/// before a call reaches a twin, so that no request activates a twin for a
/// patient that does not exist. Names the patient in the audit entry.
grpc::Status check_patient(service_env& env, rpc_call& rc, const std::string& name, const char* field);

/// The first half of check_patient: the name's form and the caller's access,
/// before any lookup (a forwarded call is looked up by its owner).
grpc::Status allow_patient(rpc_call& rc, const std::string& name, const char* field);

/// OK when `name` (request field `field`) names a device the caller may
/// reach (a device token: its own); INVALID_ARGUMENT or PERMISSION_DENIED
/// otherwise, before any lookup. Names the device in the audit entry.
grpc::Status allow_device(rpc_call& rc, const std::string& name, const char* field);

/// allow_device, then the device's registry record into `out` (NOT_FOUND if
/// it is not registered).
grpc::Status find_device(service_env& env, rpc_call& rc, const std::string& name, const char* field,
                         storage::device_record& out);

/// This node's patients of `tenant` that match `filter`: how many, and the
/// first `limit` in `order` after `after` (when set) — from the twin index,
/// copying only those (twin_service.cpp; the first query seeds the index
/// from the registry).
actors::twin_index::selection local_patients(service_env& env, std::string_view tenant,
                                             const actors::twin_filter& filter, const actors::twin_order& order,
                                             size_t limit = SIZE_MAX,
                                             const std::pair<std::string, actors::patient_summary>* after = nullptr);

/// PeerService.ListPatientSummaries of this node (twin_service.cpp).
/// PeerService.ApplyPatientParts and LinkDevice on the patient's owner
/// (ingest_forwarding.cpp): the caller is a member (cluster_peers checked
/// its certificate).
grpc::Status apply_patient_parts(service_env& env, const grpc::ServerContext& call,
                                 const internal::PatientParts& req, internal::PatientPartsAck* out);
grpc::Status link_device(service_env& env, const grpc::ServerContext& call,
                         const internal::DeviceLink& req);
/// PeerService.ReleaseDevices on a device's owner (ingest_forwarding.cpp).
grpc::Status release_devices(service_env& env, const grpc::ServerContext& call,
                             const internal::DeviceRelease& req);

grpc::Status local_summaries(service_env& env, const internal::SummaryQuery& q,
                             internal::SummaryList* out);

std::unique_ptr<grpc::Service> make_registry_service(service_env& env);
std::unique_ptr<grpc::Service> make_ingest_service(service_env& env);
std::unique_ptr<grpc::Service> make_twin_service(service_env& env);
std::unique_ptr<grpc::Service> make_alert_service(service_env& env);
std::unique_ptr<grpc::Service> make_cluster_service(service_env& env);
std::unique_ptr<grpc::Service> make_clinical_service(service_env& env);
std::unique_ptr<grpc::Service> make_fhir_service(service_env& env);
std::unique_ptr<grpc::Service> make_rollout_service(service_env& env);

class rollout_facts;
/// What firmware rollouts read and change (rollout_facts.cpp): on this
/// node, and in a cluster at the owners of the twins.
std::unique_ptr<rollout_facts> make_node_rollout_facts(service_env& env);
/// PeerService.RolloutFacts and TargetFirmware on this member (the caller
/// holds a rollout).
grpc::Status rollout_facts_here(service_env& env, const internal::RolloutFactsRequest& req,
                                internal::RolloutFactsReply* out);
grpc::Status target_firmware_here(service_env& env, const internal::FirmwareTarget& req);
/// The latest rollout each of `devices` is in among those the other
/// members hold (none on a single node), into `out`; UNAVAILABLE when a
/// member could not be asked within `timeout`.
grpc::Status ask_rollouts_elsewhere(service_env& env, const std::vector<std::string>& devices,
                                    std::chrono::milliseconds timeout, std::vector<v1::DeviceRollout>& out);
/// The same for one device's twin, through env.remote_rollouts; what the
/// members that answered within `timeout` said.
std::vector<v1::DeviceRollout> device_rollouts_elsewhere(service_env& env, const std::string& device,
                                                         std::chrono::milliseconds timeout);

}  // namespace healthtwin::services
