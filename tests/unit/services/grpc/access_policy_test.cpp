#include "services/grpc/access_policy.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::services;

namespace {

principal who(role_set roles, std::string tenant = "h1", std::string device = {}) {
  return principal{"p", std::move(tenant), roles, std::move(device), 0};
}

}  // namespace

TEST(access_policy, roles_reach_only_their_rpcs_and_only_in_their_tenant) {
  auto clinician = who(static_cast<role_set>(role::clinician));
  EXPECT_EQ(check_access(clinician, "TwinService/GetPatientTwin", {"h1", {}}), "");
  EXPECT_NE(check_access(clinician, "TwinService/GetPatientTwin", {"h2", {}}), "");
  EXPECT_NE(check_access(clinician, "RegistryService/ErasePatient", {"h1", {}}), "");
  auto sre = who(static_cast<role_set>(role::sre));
  EXPECT_EQ(check_access(sre, "ClusterService/GetNodeStatus", {"", {}}), "");
  EXPECT_NE(check_access(sre, "TwinService/GetPatientTwin", {"h1", {}}), "");
  EXPECT_NE(check_access(sre, "AlertService/ListAlerts", {"h1", {}}), "");
  EXPECT_NE(check_access(who(static_cast<role_set>(role::service)), "NoSuch/Rpc", {"h1", {}}), "");
}

TEST(access_policy, device_tokens_name_only_their_own_device) {
  auto pump = who(static_cast<role_set>(role::device), "h1", "pump-1");
  EXPECT_EQ(check_access(pump, "IngestService/Ingest", {"h1", {"pump-1", "pump-1"}}), "");
  EXPECT_NE(check_access(pump, "IngestService/Ingest", {"h1", {"pump-1", "pump-2"}}), "");
  EXPECT_NE(check_access(pump, "IngestService/Ingest", {"h1", {}}), "");
  EXPECT_EQ(check_access(pump, "TwinService/GetDeviceTwin", {"h1", {"pump-1"}}), "");
  EXPECT_NE(check_access(pump, "TwinService/GetDeviceTwin", {"h1", {"pump-9"}}), "");
  EXPECT_NE(check_access(pump, "TwinService/GetPatientTwin", {"h1", {}}), "");
  // The same device id in another tenant is another device.
  EXPECT_NE(check_access(pump, "IngestService/Ingest", {"h2", {"pump-1"}}), "");
}

TEST(access_policy, a_call_that_touches_nothing_checks_only_the_roles) {
  call_scope nothing;
  nothing.touches_nothing = true;
  auto pump = who(static_cast<role_set>(role::device), "h1", "pump-1");
  EXPECT_EQ(check_access(pump, "IngestService/Ingest", nothing), "");
  EXPECT_NE(check_access(who(static_cast<role_set>(role::clinician)), "IngestService/Ingest", nothing), "");
}

TEST(access_policy, role_names_round_trip) {
  for (auto r : all_roles())
    EXPECT_EQ(role_from_name(role_name(r)), r);
  EXPECT_FALSE(role_from_name("admin"));
}
