#pragma once
// Private to services/grpc: reading a twin for TwinService's Get and Watch
// calls (twin_service.cpp, twin_watch.cpp).

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/util/field_mask_util.h>

#include "healthtwin/v1/twin.grpc.pb.h"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/field_rules.hpp"
#include "services/grpc/service_env.hpp"
#include "storage/registry.hpp"

namespace healthtwin::services {

// Every path of a read mask must name a field of the twin message.
template <class Twin = v1::PatientTwin>
std::optional<field_violation> check_read_mask(const google::protobuf::FieldMask& mask) {
  auto bad = check_mask(mask, "read_mask", Twin::descriptor());
  if (bad.empty())
    return std::nullopt;
  return bad.front();
}

inline void apply_read_mask(const google::protobuf::FieldMask& mask,
                            google::protobuf::Message* twin) {
  if (mask.paths_size() > 0)
    google::protobuf::util::FieldMaskUtil::TrimMessage(mask, twin);
}

// A watch request's read mask and min_interval (1 s by default, 100 ms ..
// 60 s): the interval, or what is wrong.
template <class Twin, class Request>
std::optional<std::chrono::milliseconds> check_watch(const Request& req,
                                                     std::vector<field_violation>& bad) {
  if (auto m = check_read_mask<Twin>(req.read_mask()))
    bad.push_back(*m);
  auto ms = std::chrono::milliseconds(req.has_min_interval() ? to_ms(req.min_interval()) : 1000);
  if (ms.count() < 100 || ms.count() > 60'000)
    bad.push_back({"min_interval", "must be between 100 ms and 60 s"});
  if (!bad.empty())
    return std::nullopt;
  return ms;
}

/// The twin of one device (access already checked): its view and its
/// registry record.
grpc::Status read_device_twin(service_env& env, std::chrono::milliseconds timeout,
                              const storage::device_record& rec, v1::DeviceTwin* out);

/// The twin of one patient (access already checked): its view and its open
/// alerts.
grpc::Status read_patient_twin(service_env& env, std::chrono::milliseconds timeout,
                               const std::string& name, v1::PatientTwin* out);

/// TwinService.WatchPatientTwin and WatchDeviceTwin (twin_watch.cpp), on
/// gRPC's callback API: the twin now, then each change its twin reports,
/// relayed from the owner in a cluster.
grpc::ServerWriteReactor<v1::PatientTwin>* watch_patient_twin(service_env& env, grpc::CallbackServerContext* call,
                                                              const v1::WatchPatientTwinRequest* req);
grpc::ServerWriteReactor<v1::DeviceTwin>* watch_device_twin(service_env& env, grpc::CallbackServerContext* call,
                                                            const v1::WatchDeviceTwinRequest* req);

}  // namespace healthtwin::services
