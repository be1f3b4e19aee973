// FhirService: a patient as a FHIR R4 Bundle (services/http/fhir_export),
// made with the caller's own token through this node's API in process.

#include "healthtwin/v1/fhir.grpc.pb.h"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/service_env.hpp"
#include "services/http/fhir_export.hpp"

namespace healthtwin::services {

namespace {

using grpc::Status;
constexpr int64_t day_ms = 86'400'000;

grpc::StatusCode code_of(unsigned http) {
  switch (http) {
    case 401: return grpc::StatusCode::UNAUTHENTICATED;
    case 403: return grpc::StatusCode::PERMISSION_DENIED;
    case 404: return grpc::StatusCode::NOT_FOUND;
    case 400: return grpc::StatusCode::INVALID_ARGUMENT;
    case 429: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 503: return grpc::StatusCode::UNAVAILABLE;
    default: return grpc::StatusCode::INTERNAL;
  }
}

class fhir_service final : public v1::FhirService::Service {
public:
  explicit fhir_service(service_env& env) : env_(env) {}

  Status ExportPatient(grpc::ServerContext* call, const v1::ExportPatientRequest* req, v1::FhirBundle* resp) override {
    return env_.serve(call, "FhirService/ExportPatient", [&](rpc_call& rc) -> Status {
      auto name = models::parse_twin_name(req->name());
      if (!name || name->kind != models::twin_kind::patient)
        return invalid_argument("name", "must be tenants/{tenant}/patients/{patient}");
      int64_t end = req->has_end_time() ? to_ms(req->end_time()) : models::wall_clock_ms();
      int64_t start = req->has_start_time() ? to_ms(req->start_time()) : end - day_ms;
      if (start >= end || end - start > 31 * day_ms)
        return invalid_argument("start_time", "must be before end_time, at most 31 days before it");
      rc.resource = req->name();
      if (auto st = rc.allow({std::string{name->tenant}, {}}); !st.ok())
        return st;
      // Homed in another region: exported there (or redirected), whole.
      if (!env_.owned_elsewhere(req->name()))
        if (auto home = env_.at_home(call, req->name(), [&](owner_stubs& s, grpc::ClientContext& c) {
              return s.fhir->ExportPatient(&c, *req, resp);
            }))
          return *home;
      auto api = env_.ctx.self_channel ? env_.ctx.self_channel() : nullptr;
      if (!api)
        return Status(grpc::StatusCode::UNAVAILABLE, "the node is starting");
      fhir_export_request r;
      r.tenant = std::string{name->tenant};
      r.patient_id = std::string{name->id};
      r.start_ms = start;
      r.end_ms = end;
      auto& md = call->client_metadata();
      if (auto token = md.find("authorization"); token != md.end()) {
        std::string header{token->second.data(), token->second.size()};
        r.token = header.starts_with("Bearer ") ? header.substr(7) : header;
      }
      r.base_url = "urn:healthtwin:fhir:" + r.tenant;
      auto result = export_patient_fhir(api, r, env_.timeout(call));
      if (result.http_status != 200)
        return Status(code_of(result.http_status), result.diagnostics);
      resp->set_json(std::move(result.json));
      return Status::OK;
    });
  }

private:
  service_env& env_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_fhir_service(service_env& env) {
  return std::make_unique<fhir_service>(env);
}

}  // namespace healthtwin::services
