#pragma once

#include <string>

#include <grpcpp/grpcpp.h>

#include "healthtwin/v1/registry.grpc.pb.h"

namespace healthtwin::bench {

/// Registers patient "p<id>" (ward BENCH) and bedside monitor `id` in
/// `tenant` and assigns the monitor to the patient: what a load generator
/// needs before it sends a device's readings. Empty when all three calls
/// succeeded, else their error messages.
inline std::string register_monitor(v1::RegistryService::Stub& registry, const std::string& tenant,
                                    const std::string& id) {
  grpc::ClientContext p, d, a;
  v1::CreatePatientRequest cp;
  cp.set_parent("tenants/" + tenant);
  cp.set_patient_id("p" + id);
  cp.mutable_patient()->set_ward("BENCH");
  v1::Patient patient;
  auto s1 = registry.CreatePatient(&p, cp, &patient);
  v1::CreateDeviceRequest cd;
  cd.set_parent("tenants/" + tenant);
  cd.set_device_id(id);
  cd.mutable_device()->set_type(v1::DEVICE_TYPE_BEDSIDE_MONITOR);
  v1::Device device;
  auto s2 = registry.CreateDevice(&d, cd, &device);
  v1::AssignDeviceRequest ad;
  ad.set_device("tenants/" + tenant + "/devices/" + id);
  ad.set_patient("tenants/" + tenant + "/patients/p" + id);
  auto s3 = registry.AssignDevice(&a, ad, &device);
  if (s1.ok() && s2.ok() && s3.ok())
    return {};
  return s1.error_message() + " " + s2.error_message() + " " + s3.error_message();
}

}  // namespace healthtwin::bench
