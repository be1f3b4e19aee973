// Walks every RPC of healthtwin.v1 with a token of every role, on a resource
// of the token's own tenant and of another, and expects exactly what the
// table in docs/security.md says. Also: calls without a valid token are
// UNAUTHENTICATED, and every call, allowed or not, is in the audit log.
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include <google/protobuf/descriptor.h>

#include "storage/audit_log.hpp"
#include "storage/store.hpp"
#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace storage = healthtwin::storage;

namespace {

using call_fn = std::function<grpc::Status(api_client&, const std::string& tenant)>;

template <class Req>
Req with_patient(const std::string& tenant) {
  Req r;
  r.set_patient("tenants/" + tenant + "/patients/p1");
  return r;
}

void deadline(grpc::ClientContext& ctx, int ms = 5000) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

// One call per RPC, naming resources of `tenant` (device d1, patient p1).
std::map<std::string, call_fn> every_rpc() {
  std::map<std::string, call_fn> m;
  m["IngestService/Ingest"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::IngestResponse out;
    return c.ingest->Ingest(
        &ctx, api_client::request("tenants/" + t + "/devices/d1", {{1, now_ms(), v1::METRIC_HEART_RATE, 70}}),
        &out);
  };
  m["IngestService/StreamIngest"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    auto s = c.ingest->StreamIngest(&ctx);
    s->Write(api_client::request("tenants/" + t + "/devices/d1", {{2, now_ms(), v1::METRIC_HEART_RATE, 71}}));
    s->WritesDone();
    v1::IngestResponse out;
    while (s->Read(&out)) {
    }
    return s->Finish();
  };
  m["RegistryService/CreatePatient"] = [](api_client& c, const std::string& t) {
    return c.create_patient(t, "p-new", "ICU-1");
  };
  m["RegistryService/GetPatient"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetPatientRequest r;
    r.set_name("tenants/" + t + "/patients/p1");
    v1::Patient out;
    return c.registry->GetPatient(&ctx, r, &out);
  };
  m["RegistryService/UpdatePatient"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::UpdatePatientRequest r;
    r.mutable_patient()->set_name("tenants/" + t + "/patients/p-none");
    r.mutable_patient()->set_bed("4");
    r.mutable_update_mask()->add_paths("bed");
    v1::Patient out;
    return c.registry->UpdatePatient(&ctx, r, &out);
  };
  m["RegistryService/CreateDevice"] = [](api_client& c, const std::string& t) {
    return c.create_device(t, "d-new", v1::DEVICE_TYPE_PULSE_OXIMETER);
  };
  m["RegistryService/GetDevice"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetDeviceRequest r;
    r.set_name("tenants/" + t + "/devices/d1");
    v1::Device out;
    return c.registry->GetDevice(&ctx, r, &out);
  };
  m["RegistryService/AssignDevice"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::AssignDeviceRequest r;
    r.set_device("tenants/" + t + "/devices/d1");
    r.set_patient("tenants/" + t + "/patients/p1");
    v1::Device out;
    return c.registry->AssignDevice(&ctx, r, &out);
  };
  m["RegistryService/UnassignDevice"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::UnassignDeviceRequest r;
    r.set_device("tenants/" + t + "/devices/d-none");
    v1::Device out;
    return c.registry->UnassignDevice(&ctx, r, &out);
  };
  m["RegistryService/DecommissionDevice"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::DecommissionDeviceRequest r;
    r.set_device("tenants/" + t + "/devices/d-none");
    v1::Device out;
    return c.registry->DecommissionDevice(&ctx, r, &out);
  };
  m["RegistryService/UpdateDesiredConfig"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::UpdateDesiredConfigRequest r;
    r.set_device("tenants/" + t + "/devices/d1");
    (*r.mutable_desired()->mutable_settings())["spo2.averaging_s"] = "8";
    v1::Device out;
    return c.registry->UpdateDesiredConfig(&ctx, r, &out);
  };
  m["RegistryService/ReportDeviceState"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ReportDeviceStateRequest r;
    r.set_device("tenants/" + t + "/devices/d1");
    r.mutable_reported()->set_firmware("2.4.1");
    v1::Device out;
    return c.registry->ReportDeviceState(&ctx, r, &out);
  };
  m["RegistryService/ResetDeviceSequence"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ResetDeviceSequenceRequest r;
    r.set_device("tenants/" + t + "/devices/d1");
    v1::Device out;
    return c.registry->ResetDeviceSequence(&ctx, r, &out);
  };
  m["RegistryService/ErasePatient"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ErasePatientRequest r;
    r.set_name("tenants/" + t + "/patients/p-none");
    v1::ErasePatientResponse out;
    return c.registry->ErasePatient(&ctx, r, &out);
  };
  m["RegistryService/MovePatientHome"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::MovePatientHomeRequest r;
    r.set_name("tenants/" + t + "/patients/p-none");
    r.set_home_region("eu-west");
    v1::MovePatientHomeResponse out;
    return c.registry->MovePatientHome(&ctx, r, &out);  // no regions: FAILED_PRECONDITION
  };
  m["RegistryService/AcceptPatient"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::AcceptPatientRequest r;
    r.mutable_patient()->set_name("tenants/" + t + "/patients/p-none");
    v1::Patient out;
    return c.registry->AcceptPatient(&ctx, r, &out);  // no regions: FAILED_PRECONDITION
  };
  m["RegistryService/LocateTwin"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::LocateTwinRequest r;
    r.set_name("tenants/" + t + "/devices/d1");
    v1::TwinLocation out;
    return c.registry->LocateTwin(&ctx, r, &out);
  };
  m["TwinService/GetPatientTwin"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetPatientTwinRequest r;
    r.set_name("tenants/" + t + "/patients/p1");
    v1::PatientTwin out;
    return c.twins->GetPatientTwin(&ctx, r, &out);
  };
  m["TwinService/GetDeviceTwin"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetDeviceTwinRequest r;
    r.set_name("tenants/" + t + "/devices/d1");
    v1::DeviceTwin out;
    return c.twins->GetDeviceTwin(&ctx, r, &out);
  };
  m["TwinService/GetVitalsHistory"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    auto r = with_patient<v1::GetVitalsHistoryRequest>(t);
    r.set_metric(v1::METRIC_HEART_RATE);
    r.set_start_time_ms(0);
    r.set_end_time_ms(now_ms());
    v1::VitalsHistory out;
    return c.twins->GetVitalsHistory(&ctx, r, &out);
  };
  m["TwinService/ListPatientTwins"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListPatientTwinsRequest r;
    r.set_parent("tenants/" + t);
    r.set_filter("news2 >= 0");
    v1::ListPatientTwinsResponse out;
    return c.twins->ListPatientTwins(&ctx, r, &out);
  };
  m["TwinService/WatchPatientTwin"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx, 300);  // allowed: the stream stays open until the deadline
    v1::WatchPatientTwinRequest r;
    r.set_name("tenants/" + t + "/patients/p1");
    r.mutable_min_interval()->set_nanos(100'000'000);
    auto s = c.twins->WatchPatientTwin(&ctx, r);
    v1::PatientTwin twin;
    while (s->Read(&twin)) {
    }
    return s->Finish();
  };
  m["TwinService/WatchDeviceTwin"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx, 300);  // allowed: the stream stays open until the deadline
    v1::WatchDeviceTwinRequest r;
    r.set_name("tenants/" + t + "/devices/d1");
    r.mutable_min_interval()->set_nanos(100'000'000);
    auto s = c.twins->WatchDeviceTwin(&ctx, r);
    v1::DeviceTwin twin;
    while (s->Read(&twin)) {
    }
    return s->Finish();
  };
  m["AlertService/StreamAlerts"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx, 300);  // allowed: the stream stays open until the deadline
    v1::StreamAlertsRequest r;
    r.set_parent("tenants/" + t);
    auto s = c.alerts->StreamAlerts(&ctx, r);
    v1::AlertEvent e;
    while (s->Read(&e)) {
    }
    return s->Finish();
  };
  m["AlertService/ListAlerts"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListAlertsRequest r;
    r.set_parent("tenants/" + t);
    v1::ListAlertsResponse out;
    return c.alerts->ListAlerts(&ctx, r, &out);
  };
  m["AlertService/AcknowledgeAlert"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::AcknowledgeAlertRequest r;
    r.set_name("tenants/" + t + "/patients/p1/alerts/nope");
    r.set_acknowledged_by("nurse");
    v1::Alert out;
    return c.alerts->AcknowledgeAlert(&ctx, r, &out);
  };
  m["AlertService/ResolveAlert"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ResolveAlertRequest r;
    r.set_name("tenants/" + t + "/patients/p1/alerts/nope");
    r.set_resolved_by("nurse");
    v1::Alert out;
    return c.alerts->ResolveAlert(&ctx, r, &out);
  };
  m["AlertService/SilenceAlerts"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    auto r = with_patient<v1::SilenceAlertsRequest>(t);
    r.mutable_duration()->set_seconds(60);
    r.set_silenced_by("nurse");
    v1::SilenceAlertsResponse out;
    return c.alerts->SilenceAlerts(&ctx, r, &out);
  };
  m["AlertService/GetAlarmBurden"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetAlarmBurdenRequest r;
    r.set_parent("tenants/" + t);
    v1::AlarmBurden out;
    return c.alerts->GetAlarmBurden(&ctx, r, &out);
  };
  m["FhirService/ExportPatient"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ExportPatientRequest r;
    r.set_name("tenants/" + t + "/patients/p1");
    v1::FhirBundle out;
    return c.fhir->ExportPatient(&ctx, r, &out);
  };
  m["RolloutService/CreateRollout"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::CreateRolloutRequest r;
    r.set_parent("tenants/" + t);
    r.set_rollout_id("r1");
    r.mutable_rollout()->set_firmware("2.0");
    r.mutable_rollout()->mutable_target()->add_devices("tenants/" + t + "/devices/d1");
    v1::Rollout out;
    return c.rollouts->CreateRollout(&ctx, r, &out);
  };
  m["RolloutService/GetRollout"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetRolloutRequest r;
    r.set_name("tenants/" + t + "/rollouts/r1");
    v1::Rollout out;
    return c.rollouts->GetRollout(&ctx, r, &out);
  };
  m["RolloutService/ListRollouts"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListRolloutsRequest r;
    r.set_parent("tenants/" + t);
    v1::ListRolloutsResponse out;
    return c.rollouts->ListRollouts(&ctx, r, &out);
  };
  using rollout_action = grpc::Status (v1::RolloutService::Stub::*)(grpc::ClientContext*,
                                                                    const v1::RolloutActionRequest&, v1::Rollout*);
  for (auto [rpc, action] : {std::pair<std::string, rollout_action>{"PauseRollout", &v1::RolloutService::Stub::PauseRollout},
                             {"ResumeRollout", &v1::RolloutService::Stub::ResumeRollout},
                             {"CancelRollout", &v1::RolloutService::Stub::CancelRollout}})
    m["RolloutService/" + rpc] = [action](api_client& c, const std::string& t) {
      grpc::ClientContext ctx;
      deadline(ctx);
      v1::RolloutActionRequest r;
      r.set_name("tenants/" + t + "/rollouts/r1");
      v1::Rollout out;
      return ((*c.rollouts).*action)(&ctx, r, &out);
    };
  m["RolloutService/OverrideRolloutGate"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::OverrideRolloutGateRequest r;
    r.set_name("tenants/" + t + "/rollouts/r1");
    r.set_device("tenants/" + t + "/devices/d1");
    r.set_reason("covered by the ward's monitor");
    v1::Rollout out;
    return c.rollouts->OverrideRolloutGate(&ctx, r, &out);
  };
  m["ClinicalService/GetPatientSettings"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::PatientSettings out;
    return c.clinical->GetPatientSettings(&ctx, with_patient<v1::GetPatientSettingsRequest>(t), &out);
  };
  m["ClinicalService/UpdatePatientSettings"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    auto r = with_patient<v1::UpdatePatientSettingsRequest>(t);
    r.set_updated_by("dr-a");
    v1::PatientSettings out;
    return c.clinical->UpdatePatientSettings(&ctx, r, &out);
  };
  m["ClinicalService/RecordObservations"] = [](api_client& c, const std::string& t) {
    grpc::ClientContext ctx;
    deadline(ctx);
    auto r = with_patient<v1::RecordObservationsRequest>(t);
    r.set_consciousness(0);
    r.set_recorded_by("nurse");
    v1::RecordObservationsResponse out;
    return c.clinical->RecordObservations(&ctx, r, &out);
  };
  m["ClusterService/GetNodeStatus"] = [](api_client& c, const std::string&) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::NodeStatus out;
    return c.cluster->GetNodeStatus(&ctx, {}, &out);
  };
  m["ClusterService/GetClusterStatus"] = [](api_client& c, const std::string&) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ClusterStatus out;
    return c.cluster->GetClusterStatus(&ctx, {}, &out);
  };
  m["ClusterService/ChangeMembers"] = [](api_client& c, const std::string&) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ChangeMembersResponse out;
    return c.cluster->ChangeMembers(&ctx, {}, &out);  // a single node: FAILED_PRECONDITION
  };
  m["ClusterService/BackupNode"] = [](api_client& c, const std::string&) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::BackupNodeRequest r;
    r.set_name("access-check");
    v1::Backup out;
    return c.cluster->BackupNode(&ctx, r, &out);  // no --backup-dir: FAILED_PRECONDITION
  };
  m["ClusterService/ReadReplicaCopy"] = [](api_client& c, const std::string&) {
    grpc::ClientContext ctx;
    deadline(ctx);
    auto s = c.cluster->ReadReplicaCopy(&ctx, {});  // no --backup-dir: FAILED_PRECONDITION
    v1::ReplicaCopyChunk chunk;
    while (s->Read(&chunk)) {
    }
    return s->Finish();
  };
  return m;
}

// The table of docs/security.md: RPC -> roles that may call it.
std::map<std::string, std::set<std::string>> documented_policy(std::vector<std::string>& roles) {
  std::ifstream in{std::string{HEALTHTWIN_SOURCE_DIR} + "/docs/security.md"};
  std::map<std::string, std::set<std::string>> table;
  std::string line;
  static const std::regex header{R"(^\| RPC \|(.*)\|\s*$)"};
  static const std::regex row{R"(^\| `(\w+Service/\w+)` \|(.*)\|\s*$)"};
  auto cells = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss{s};
    std::string cell;
    while (std::getline(ss, cell, '|')) {
      auto a = cell.find_first_not_of(' '), b = cell.find_last_not_of(' ');
      out.push_back(a == std::string::npos ? "" : cell.substr(a, b - a + 1));
    }
    return out;
  };
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, header)) {
      roles = cells(m[1]);
    } else if (std::regex_match(line, m, row)) {
      auto marks = cells(m[2]);
      EXPECT_EQ(marks.size(), roles.size()) << line;
      for (size_t i = 0; i < marks.size() && i < roles.size(); ++i)
        if (marks[i] == "yes")
          table[m[1]].insert(roles[i]);
        else
          EXPECT_EQ(marks[i], "-") << line;
      table[m[1]];  // present even when no role may call it
    }
  }
  return table;
}

std::set<std::string> rpcs_in_proto() {
  std::set<std::string> out;
  auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (auto svc : {"RegistryService", "IngestService", "TwinService", "AlertService",
                   "ClinicalService", "ClusterService", "FhirService", "RolloutService"}) {
    auto* d = pool->FindServiceByName(std::string{"healthtwin.v1."} + svc);
    EXPECT_NE(d, nullptr) << svc;
    for (int i = 0; d && i < d->method_count(); ++i)
      out.insert(std::string{svc} + "/" + d->method(i)->name());
  }
  return out;
}

}  // namespace

TEST(access_control_test, every_rpc_role_and_tenant_gets_exactly_what_docs_security_md_says) {
  temp_dir dir;
  auto node = std::make_unique<node_process>(dir.path());
  ASSERT_TRUE(node->wait_ready()) << node->log();
  // Both tenants have patient p1 with device d1.
  for (auto tenant : {"h1", "h2"}) {
    api_client setup{node->channel(tenant)};
    ASSERT_TRUE(setup.create_patient(tenant, "p1", "ICU-3").ok());
    ASSERT_TRUE(setup.create_device(tenant, "d1", v1::DEVICE_TYPE_BEDSIDE_MONITOR,
                                    std::string{"tenants/"} + tenant + "/patients/p1")
                    .ok());
  }

  std::vector<std::string> roles;
  auto policy = documented_policy(roles);
  EXPECT_EQ(roles, (std::vector<std::string>{"device", "service", "clinician", "ops-admin", "sre"}));
  auto calls = every_rpc();
  std::set<std::string> documented, tested;
  for (auto& [rpc, _] : policy)
    documented.insert(rpc);
  for (auto& [rpc, _] : calls)
    tested.insert(rpc);
  EXPECT_EQ(documented, rpcs_in_proto()) << "docs/security.md must list every RPC";
  EXPECT_EQ(tested, rpcs_in_proto()) << "this test must call every RPC";

  size_t audited_calls = 0, denied = 0;
  for (auto& [rpc, call] : calls) {
    for (auto& role : roles) {
      // Tokens of tenant h1; the device token is device d1's.
      auto ch = node->channel_with(node->token("h1", {role}, role + "-1", role == "device" ? "d1" : ""));
      api_client client{ch};
      for (auto tenant : {"h1", "h2"}) {
        bool cluster_wide = rpc.rfind("ClusterService/", 0) == 0;
        bool expect_allowed = policy[rpc].count(role) && (cluster_wide || std::string{tenant} == "h1");
        auto st = call(client, tenant);
        ++audited_calls;
        bool stream = rpc == "AlertService/StreamAlerts" || rpc == "TwinService/WatchPatientTwin" ||
                      rpc == "TwinService/WatchDeviceTwin";
        if (stream && expect_allowed)
          ++audited_calls;  // opened and ended: two entries
        if (expect_allowed) {
          EXPECT_NE(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
              << rpc << " as " << role << " on " << tenant << ": " << st.error_message();
          EXPECT_NE(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc << " as " << role;
        } else {
          ++denied;
          EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
              << rpc << " as " << role << " on " << tenant << ": " << st.error_message();
        }
      }
    }
    // No token, an expired one, and one from a key the node does not trust.
    auto expired = token_claims("late", "h1", {"service", "clinician", "ops-admin", "sre"});
    expired["exp"] = unix_now() - 3600;
    auto stranger = signing_key::es256();
    for (auto& bearer : {std::string{}, node->signer().sign(expired),
                         stranger->sign(token_claims("x", "h1", all_user_roles()))}) {
      api_client client{node->channel_with(bearer)};
      auto st = call(client, "h1");
      ++audited_calls;
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc << ": " << st.error_message();
    }
  }
  EXPECT_GT(denied, 100u);

  // Every one of those calls is on record, the denied ones as such.
  ASSERT_EQ(node->stop(), 0);
  storage::store_settings s;
  s.data_dir = (dir.path() / "db").string();
  s.shards = 0;
  auto st = storage::store::open(s);
  ASSERT_TRUE(st);
  size_t entries = 0, denied_entries = 0, unauthenticated = 0, composed = 0;
  ASSERT_FALSE(storage::audit_log::read(**st, [&](uint64_t, const storage::audit_entry& e) {
    // The reads the FHIR export makes on its caller's behalf are on record
    // too, as the caller "via fhir-export".
    if (e.principal.ends_with(" via fhir-export")) {
      ++composed;
      EXPECT_NE(e.action, "FhirService/ExportPatient");
      return true;
    }
    ++entries;
    if (e.outcome == "PERMISSION_DENIED") {
      ++denied_entries;
      EXPECT_EQ(e.principal.rfind("h1/", 0), 0u) << e.principal;
    }
    if (e.principal.rfind("unauthenticated@", 0) == 0) {
      ++unauthenticated;
      EXPECT_EQ(e.outcome, "UNAUTHENTICATED");
    }
    return true;
  }));
  size_t setup_calls = 2 * 3;  // per tenant: create patient, create device, assign
  EXPECT_EQ(entries, audited_calls + setup_calls);
  EXPECT_GT(composed, 0u);
  EXPECT_EQ(denied_entries, denied);
  EXPECT_EQ(unauthenticated, 3 * calls.size());  // no token, expired, untrusted key
  auto verdict = storage::audit_log::verify(**st);
  ASSERT_TRUE(verdict);
  EXPECT_FALSE(verdict->first_broken);
}
