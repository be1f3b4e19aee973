#pragma once

#include <map>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "healthtwin/v1/fhir.grpc.pb.h"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "healthtwin/v1/clinical.grpc.pb.h"
#include "healthtwin/v1/cluster.grpc.pb.h"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "healthtwin/v1/rollout.grpc.pb.h"
#include "healthtwin/v1/twin.grpc.pb.h"

namespace healthtwin::testing {

namespace v1 = healthtwin::v1;

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Stubs for every healthtwin.v1 service plus the calls tests repeat.
struct api_client {
  explicit api_client(const std::shared_ptr<grpc::Channel>& ch)
      : registry(v1::RegistryService::NewStub(ch)), ingest(v1::IngestService::NewStub(ch)),
        twins(v1::TwinService::NewStub(ch)), alerts(v1::AlertService::NewStub(ch)),
        cluster(v1::ClusterService::NewStub(ch)), clinical(v1::ClinicalService::NewStub(ch)),
        fhir(v1::FhirService::NewStub(ch)), rollouts(v1::RolloutService::NewStub(ch)) {}

  std::unique_ptr<v1::RegistryService::Stub> registry;
  std::unique_ptr<v1::IngestService::Stub> ingest;
  std::unique_ptr<v1::TwinService::Stub> twins;
  std::unique_ptr<v1::AlertService::Stub> alerts;
  std::unique_ptr<v1::ClusterService::Stub> cluster;
  std::unique_ptr<v1::ClinicalService::Stub> clinical;
  std::unique_ptr<v1::FhirService::Stub> fhir;
  std::unique_ptr<v1::RolloutService::Stub> rollouts;

  static void deadline(grpc::ClientContext& ctx, int seconds = 10) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  grpc::Status create_patient(const std::string& tenant, const std::string& id,
                              const std::string& ward, bool scale2 = false) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::CreatePatientRequest req;
    req.set_parent("tenants/" + tenant);
    req.set_patient_id(id);
    req.mutable_patient()->set_ward(ward);
    req.mutable_patient()->set_bed("7");
    req.mutable_patient()->set_spo2_scale2(scale2);
    v1::Patient out;
    return registry->CreatePatient(&ctx, req, &out);
  }

  grpc::Status create_device(const std::string& tenant, const std::string& id, v1::DeviceType type,
                             const std::string& patient = {}) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::CreateDeviceRequest req;
    req.set_parent("tenants/" + tenant);
    req.set_device_id(id);
    req.mutable_device()->set_type(type);
    v1::Device out;
    auto st = registry->CreateDevice(&ctx, req, &out);
    if (!st.ok() || patient.empty())
      return st;
    grpc::ClientContext actx;
    deadline(actx);
    v1::AssignDeviceRequest areq;
    areq.set_device(out.name());
    areq.set_patient(patient);
    return registry->AssignDevice(&actx, areq, &out);
  }

  struct reading {
    uint64_t seq;
    int64_t time_ms;
    v1::Metric metric;
    double value;
  };

  static v1::IngestRequest request(const std::string& device, const std::vector<reading>& rs,
                                   uint64_t batch_id = 1) {
    v1::IngestRequest req;
    req.set_batch_id(batch_id);
    auto* d = req.add_devices();
    d->set_device(device);
    for (auto& r : rs) {
      d->add_sequence(r.seq);
      d->add_time_ms(r.time_ms);
      d->add_metric(r.metric);
      d->add_value(r.value);
    }
    return req;
  }

  grpc::Status send(const v1::IngestRequest& req, v1::IngestResponse& resp) {
    grpc::ClientContext ctx;
    deadline(ctx);
    return ingest->Ingest(&ctx, req, &resp);
  }

  v1::PatientTwin patient_twin(const std::string& name) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetPatientTwinRequest req;
    req.set_name(name);
    v1::PatientTwin out;
    auto st = twins->GetPatientTwin(&ctx, req, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }

  v1::DeviceTwin device_twin(const std::string& name) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetDeviceTwinRequest req;
    req.set_name(name);
    v1::DeviceTwin out;
    auto st = twins->GetDeviceTwin(&ctx, req, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }

  /// The first page of ListAlerts for a tenant (`tenants/{t}`).
  std::vector<v1::Alert> list_alerts(const std::string& parent, bool include_resolved = false) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListAlertsRequest req;
    req.set_parent(parent);
    req.set_include_resolved(include_resolved);
    v1::ListAlertsResponse out;
    auto st = alerts->ListAlerts(&ctx, req, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return {out.alerts().begin(), out.alerts().end()};
  }

  /// The alert events after `after` (0: all retained), read from a resumed
  /// stream for 1.5 s.
  std::vector<v1::AlertEvent> replay_alerts(const std::string& parent, uint64_t after = 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1500));
    v1::StreamAlertsRequest req;
    req.set_parent(parent);
    req.set_resume_after(after);
    auto stream = alerts->StreamAlerts(&ctx, req);
    std::vector<v1::AlertEvent> events;
    v1::AlertEvent e;
    while (stream->Read(&e))
      events.push_back(e);
    return events;
  }

  /// Every sample of a metric in [from, to), following pages.
  std::vector<std::pair<int64_t, double>> history(const std::string& patient, v1::Metric m,
                                                  int64_t from, int64_t to) {
    std::vector<std::pair<int64_t, double>> out;
    std::string token;
    do {
      grpc::ClientContext ctx;
      deadline(ctx, 30);
      v1::GetVitalsHistoryRequest req;
      req.set_patient(patient);
      req.set_metric(m);
      req.set_start_time_ms(from);
      req.set_end_time_ms(to);
      req.set_page_token(token);
      v1::VitalsHistory page;
      auto st = twins->GetVitalsHistory(&ctx, req, &page);
      EXPECT_TRUE(st.ok()) << st.error_message();
      if (!st.ok())
        break;
      for (int i = 0; i < page.time_ms_size(); ++i)
        out.emplace_back(page.time_ms(i), page.value(i));
      token = page.next_page_token();
    } while (!token.empty());
    return out;
  }
};

/// Finds a vital of a metric in a patient twin (nullptr if absent).
inline const v1::Vital* find_vital(const v1::PatientTwin& t, v1::Metric m) {
  for (auto& v : t.vitals())
    if (v.metric() == m)
      return &v;
  return nullptr;
}

}  // namespace healthtwin::testing
