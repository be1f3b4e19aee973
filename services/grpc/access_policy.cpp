#include "services/grpc/access_policy.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace healthtwin::services {

namespace {

constexpr role device = role::device, service = role::service, clinician = role::clinician,
               ops_admin = role::ops_admin, sre = role::sre;

constexpr auto owner = cluster_route::owner, every = cluster_route::every_member,
               here = cluster_route::this_member;

// Who may call what, and where a cluster answers it. docs/security.md shows
// the same table, and tests/integration/access_control_test walks it
// against a running node.
const std::vector<rpc_row> table{
    {"IngestService/Ingest", device | service, true, owner},
    {"IngestService/StreamIngest", device | service, true, owner},
    {"RegistryService/CreatePatient", service | ops_admin, true, owner},
    {"RegistryService/GetPatient", service | clinician | ops_admin, true, owner},
    {"RegistryService/UpdatePatient", service | ops_admin, true, owner},
    {"RegistryService/CreateDevice", service | ops_admin, true, owner},
    {"RegistryService/GetDevice", service | clinician | ops_admin, true, owner},
    {"RegistryService/AssignDevice", service | ops_admin, true, owner},
    {"RegistryService/UnassignDevice", service | ops_admin, true, owner},
    {"RegistryService/DecommissionDevice", service | ops_admin, true, owner},
    {"RegistryService/UpdateDesiredConfig", service | ops_admin, true, owner},
    {"RegistryService/ReportDeviceState", device | service, true, owner},
    {"RegistryService/ResetDeviceSequence", service | ops_admin, true, owner},
    {"RegistryService/ErasePatient", static_cast<role_set>(ops_admin), true, owner},
    {"RegistryService/MovePatientHome", static_cast<role_set>(ops_admin), true, owner},
    {"RegistryService/AcceptPatient", static_cast<role_set>(ops_admin), true, owner},
    {"RegistryService/LocateTwin", device | service | clinician | ops_admin, true, owner},
    {"TwinService/GetPatientTwin", service | clinician, true, owner},
    {"TwinService/GetDeviceTwin", device | service | clinician, true, owner},
    {"TwinService/GetVitalsHistory", service | clinician, true, owner},
    {"TwinService/ListPatientTwins", service | clinician, true, every},
    {"TwinService/WatchPatientTwin", service | clinician, true, owner},
    {"TwinService/WatchDeviceTwin", device | service | clinician, true, owner},
    {"AlertService/StreamAlerts", service | clinician, true, every},
    {"AlertService/ListAlerts", service | clinician, true, every},
    {"AlertService/AcknowledgeAlert", service | clinician, true, owner},
    {"AlertService/ResolveAlert", service | clinician, true, owner},
    {"AlertService/SilenceAlerts", static_cast<role_set>(clinician), true, owner},
    {"AlertService/GetAlarmBurden", service | clinician, true, every},
    {"ClinicalService/GetPatientSettings", service | clinician, true, owner},
    {"ClinicalService/UpdatePatientSettings", static_cast<role_set>(clinician), true, owner},
    {"ClinicalService/RecordObservations", service | clinician, true, owner},
    {"FhirService/ExportPatient", service | clinician, true, here},
    {"RolloutService/CreateRollout", service | ops_admin, true, owner},
    {"RolloutService/GetRollout", service | clinician | ops_admin, true, owner},
    {"RolloutService/ListRollouts", service | clinician | ops_admin, true, every},
    {"RolloutService/PauseRollout", service | ops_admin, true, owner},
    {"RolloutService/ResumeRollout", service | ops_admin, true, owner},
    {"RolloutService/CancelRollout", service | ops_admin, true, owner},
    {"RolloutService/OverrideRolloutGate", static_cast<role_set>(clinician), true, owner},
    {"ClusterService/GetNodeStatus", sre | ops_admin, false, here},
    {"ClusterService/GetClusterStatus", sre | ops_admin, false, here},
    {"ClusterService/ChangeMembers", static_cast<role_set>(sre), false, here},
    {"ClusterService/BackupNode", static_cast<role_set>(sre), false, here},
    {"ClusterService/ReadReplicaCopy", static_cast<role_set>(sre), false, here},
    // Not RPCs of healthtwin.v1, kept here so the table is complete: health
    // checking and reflection need no token (they reveal no data).
    {"grpc.health.v1.Health/Check", 0, false, here},
    {"grpc.health.v1.Health/Watch", 0, false, here},
    {"grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", 0, false, here},
};

const std::array<std::pair<role, std::string_view>, 5> names{{
    {device, "device"},
    {service, "service"},
    {clinician, "clinician"},
    {ops_admin, "ops-admin"},
    {sre, "sre"},
}};

}  // namespace

std::optional<role> role_from_name(std::string_view name) {
  for (auto& [r, n] : names)
    if (n == name)
      return r;
  return std::nullopt;
}

std::string_view role_name(role r) {
  for (auto& [x, n] : names)
    if (x == r)
      return n;
  return "?";
}

const std::vector<role>& all_roles() {
  static const std::vector<role> roles{device, service, clinician, ops_admin, sre};
  return roles;
}

const std::vector<rpc_row>& rpc_table() { return table; }

const rpc_row* find_rpc(std::string_view rpc) {
  auto it = std::find_if(table.begin(), table.end(), [&](auto& r) { return r.rpc == rpc; });
  return it == table.end() ? nullptr : &*it;
}

role_set roles_allowed(std::string_view rpc) {
  auto* row = find_rpc(rpc);
  return row ? row->roles : 0;
}

bool tenant_scoped(std::string_view rpc) {
  auto* row = find_rpc(rpc);
  return !row || row->tenant_scoped;
}

std::string check_access(const principal& who, std::string_view rpc, const call_scope& scope) {
  return check_access(who, find_rpc(rpc), rpc, scope);
}

std::string check_access(const principal& who, const rpc_row* row, std::string_view rpc,
                         const call_scope& scope) {
  auto allowed = static_cast<role_set>((row ? row->roles : 0) & who.roles);
  if (allowed == 0)
    return "no role of the caller may call " + std::string{rpc};
  if (scope.touches_nothing)
    return {};
  if (row->tenant_scoped && scope.tenant != who.tenant)
    return "the caller's tenant does not own the resource";
  // A device token acts for its own device only.
  if (allowed == static_cast<role_set>(device)) {
    if (scope.devices.empty())
      return "device tokens may only name their own device";
    for (auto d : scope.devices)
      if (d != who.device)
        return "device tokens may only name their own device";
  }
  return {};
}

}  // namespace healthtwin::services
