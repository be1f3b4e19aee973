#include "services/grpc/access_policy.hpp"

#include <map>
#include <set>

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "healthtwin/v1/alert.pb.h"
#include "healthtwin/v1/clinical.pb.h"
#include "healthtwin/v1/cluster.pb.h"
#include "healthtwin/v1/fhir.pb.h"
#include "healthtwin/v1/ingest.pb.h"
#include "healthtwin/v1/registry.pb.h"
#include "healthtwin/v1/rollout.pb.h"
#include "healthtwin/v1/twin.pb.h"

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

TEST(access_policy, every_method_of_the_api_has_exactly_one_row_and_every_row_a_method) {
  // Each file's descriptor is in the pool once its code is linked in.
  for (auto* file : {healthtwin::v1::IngestRequest::descriptor()->file(),
                     healthtwin::v1::CreatePatientRequest::descriptor()->file(),
                     healthtwin::v1::GetPatientTwinRequest::descriptor()->file(),
                     healthtwin::v1::StreamAlertsRequest::descriptor()->file(),
                     healthtwin::v1::GetPatientSettingsRequest::descriptor()->file(),
                     healthtwin::v1::GetNodeStatusRequest::descriptor()->file(),
                     healthtwin::v1::ExportPatientRequest::descriptor()->file(),
                     healthtwin::v1::CreateRolloutRequest::descriptor()->file()})
    ASSERT_NE(file, nullptr);
  auto* pool = google::protobuf::DescriptorPool::generated_pool();
  std::set<std::string> methods;
  for (auto* service : {"IngestService", "RegistryService", "TwinService", "AlertService", "ClinicalService",
                        "ClusterService", "FhirService", "RolloutService"}) {
    auto* d = pool->FindServiceByName(std::string{"healthtwin.v1."} + service);
    ASSERT_NE(d, nullptr) << service;
    for (int i = 0; i < d->method_count(); ++i)
      methods.insert(std::string{service} + "/" + d->method(i)->name());
  }
  std::map<std::string, int> rows;
  for (auto& r : rpc_table())
    ++rows[std::string{r.rpc}];
  for (auto& m : methods)
    EXPECT_EQ(rows[m], 1) << m << ": a method of the API needs exactly one row of the RPC table";
  for (auto& [rpc, n] : rows) {
    if (rpc.rfind("grpc.", 0) != 0) {
      EXPECT_TRUE(methods.count(rpc)) << rpc << ": a row for no method of the API";
    }
  }
  // Only health checking and reflection go without a token.
  for (auto& r : rpc_table())
    EXPECT_EQ(r.roles == 0, r.rpc.rfind("grpc.", 0) == 0) << r.rpc;
}

TEST(access_policy, the_table_says_where_a_cluster_answers_each_call) {
  EXPECT_EQ(find_rpc("TwinService/GetPatientTwin")->in_cluster, cluster_route::owner);
  EXPECT_EQ(find_rpc("AlertService/StreamAlerts")->in_cluster, cluster_route::every_member);
  EXPECT_EQ(find_rpc("ClusterService/ChangeMembers")->in_cluster, cluster_route::this_member);
  EXPECT_EQ(find_rpc("NoService/Nothing"), nullptr);
  EXPECT_FALSE(tenant_scoped("ClusterService/GetNodeStatus"));
  EXPECT_TRUE(tenant_scoped("RegistryService/GetPatient"));
  EXPECT_EQ(roles_allowed("NoService/Nothing"), 0);
}
