#include "services/grpc/access_policy.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace healthtwin::services {

namespace {

constexpr role device = role::device, service = role::service, clinician = role::clinician,
               ops_admin = role::ops_admin, sre = role::sre;

// Who may call what. docs/security.md shows the same table, and
// tests/integration/access_control_test walks it against a running node.
const std::array<std::pair<std::string_view, role_set>, 34> policy{{
    {"IngestService/Ingest", device | service},
    {"IngestService/StreamIngest", device | service},
    {"RegistryService/CreatePatient", service | ops_admin},
    {"RegistryService/GetPatient", service | clinician | ops_admin},
    {"RegistryService/UpdatePatient", service | ops_admin},
    {"RegistryService/CreateDevice", service | ops_admin},
    {"RegistryService/GetDevice", service | clinician | ops_admin},
    {"RegistryService/AssignDevice", service | ops_admin},
    {"RegistryService/UnassignDevice", service | ops_admin},
    {"RegistryService/DecommissionDevice", service | ops_admin},
    {"RegistryService/UpdateDesiredConfig", service | ops_admin},
    {"RegistryService/ReportDeviceState", device | service},
    {"RegistryService/ResetDeviceSequence", service | ops_admin},
    {"RegistryService/ErasePatient", static_cast<role_set>(ops_admin)},
    {"TwinService/GetPatientTwin", service | clinician},
    {"TwinService/GetDeviceTwin", device | service | clinician},
    {"TwinService/GetVitalsHistory", service | clinician},
    {"TwinService/ListPatientTwins", service | clinician},
    {"TwinService/WatchPatientTwin", service | clinician},
    {"TwinService/WatchDeviceTwin", device | service | clinician},
    {"AlertService/StreamAlerts", service | clinician},
    {"AlertService/ListAlerts", service | clinician},
    {"AlertService/AcknowledgeAlert", service | clinician},
    {"AlertService/ResolveAlert", service | clinician},
    {"AlertService/SilenceAlerts", static_cast<role_set>(clinician)},
    {"ClinicalService/GetPatientSettings", service | clinician},
    {"ClinicalService/UpdatePatientSettings", static_cast<role_set>(clinician)},
    {"ClinicalService/RecordObservations", service | clinician},
    {"ClusterService/GetNodeStatus", sre | ops_admin},
    {"ClusterService/GetClusterStatus", sre | ops_admin},
    {"ClusterService/ChangeMembers", static_cast<role_set>(sre)},
    // Not RPCs of healthtwin.v1, kept here so the table is complete: health
    // checking and reflection need no token (they reveal no data).
    {"grpc.health.v1.Health/Check", 0},
    {"grpc.health.v1.Health/Watch", 0},
    {"grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", 0},
}};

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

role_set roles_allowed(std::string_view rpc) {
  auto it = std::find_if(policy.begin(), policy.end(), [&](auto& p) { return p.first == rpc; });
  return it == policy.end() ? 0 : it->second;
}

bool tenant_scoped(std::string_view rpc) { return rpc.substr(0, 15) != "ClusterService/"; }

std::string check_access(const principal& who, std::string_view rpc, const call_scope& scope) {
  auto allowed = static_cast<role_set>(roles_allowed(rpc) & who.roles);
  if (allowed == 0)
    return "no role of the caller may call " + std::string{rpc};
  if (scope.touches_nothing)
    return {};
  if (tenant_scoped(rpc) && scope.tenant != who.tenant)
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
