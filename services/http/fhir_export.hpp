#pragma once
// A patient's record for a time range as a FHIR R4 Bundle (docs/fhir.md):
// Patient, Devices and DeviceMetrics, vital-signs Observations (LOINC,
// UCUM; blood pressure as the panel with its two components), NEWS2 as an
// Observation with its parameters as components and derivedFrom links to
// the vital signs it scored, and open alerts as Flags. Built from the
// public API (called with the caller's own token), so access, tenant
// scoping and cluster routing are the API's.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include "services/http/http_listener.hpp"

namespace healthtwin::services {

struct fhir_export_request {
  std::string tenant;
  std::string patient_id;
  int64_t start_ms = 0, end_ms = 0;  ///< vital signs measured in [start, end)
  std::string token;                 ///< the caller's bearer token, passed on
  std::string base_url;              ///< e.g. https://node:8080/fhir/st-mary (fullUrl of entries)
};

/// The answer: a Bundle, or an OperationOutcome with the HTTP status it
/// goes with.
struct fhir_export_result {
  unsigned http_status = 200;
  std::string json;
  std::string diagnostics;  ///< why, when it is an OperationOutcome
};

/// Observations exported at most (a longer range is refused as too costly).
inline constexpr size_t max_fhir_observations = 50'000;

/// Exports through `api` (the node's gRPC server in process), within `deadline`.
fhir_export_result export_patient_fhir(const std::shared_ptr<grpc::Channel>& api, const fhir_export_request& req,
                                       std::chrono::milliseconds deadline);

/// A refused API call as an OperationOutcome with the HTTP status it goes
/// with ("{what}: {the status's message}").
fhir_export_result fhir_failure(const grpc::Status& st, const char* what);

/// An OperationOutcome with one issue (FHIR issue-type code, diagnostics).
std::string fhir_outcome(const std::string& code, const std::string& diagnostics);

/// The media type of FHIR JSON answers.
inline constexpr std::string_view fhir_json = "application/fhir+json; charset=utf-8";

/// How resources of `tenant` are named to a caller who reached this node as
/// `req`'s Host (at most 253 characters of it, a DNS name's limit).
std::string fhir_base_url(const http_request& req, const std::string& tenant);

/// An HTTP answer of `status` with fhir_outcome(code, why).
inline http_response fhir_outcome_response(unsigned status, const std::string& code, const std::string& why) {
  return {status, std::string{fhir_json}, fhir_outcome(code, why)};
}

}  // namespace healthtwin::services
