#pragma once
// Moving a patient's home to another region (RegistryService.
// MovePatientHome and AcceptPatient; docs/multi-region.md, "Moving a
// patient's home").

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "healthtwin/v1/registry.pb.h"
#include "storage/patient_transfer.hpp"

namespace healthtwin::services {

struct service_env;

/// The records of one AcceptPatient transfer per patient, gathered part by
/// part until the last. Bounded: at most `max_transfers` at once, each at
/// most `max_bytes`; a transfer not continued within `idle` is dropped.
/// Thread-safe.
class patient_arrivals {
public:
  static constexpr size_t max_transfers = 4;
  static constexpr size_t max_bytes = size_t{512} << 20;
  static constexpr std::chrono::minutes idle{10};

  /// Adds the records of `req` (checked: known kinds, bounded keys); when
  /// it is the last part, `complete` gets every record of the transfer.
  /// INVALID_ARGUMENT naming the field for a bad record or a part out of
  /// order; RESOURCE_EXHAUSTED over the bounds.
  grpc::Status add(const v1::AcceptPatientRequest& req,
                   std::optional<std::vector<storage::patient_entry>>& complete);

private:
  struct pending {
    uint32_t next_part = 0;
    size_t bytes = 0;
    std::vector<storage::patient_entry> entries;
    std::chrono::steady_clock::time_point touched;
  };
  std::mutex mtx_;
  std::map<std::string, pending> pending_;
};

/// MovePatientHome on the member that owns the patient in its home region
/// (the caller routed it there): fences the patient's shard, checkpoints
/// it, exports the patient's records, sends them to the new home in
/// AcceptPatient parts with the caller's token, then detaches its devices
/// and erases it here; the shard is unfenced however it ends.
grpc::Status move_patient_home(service_env& env, grpc::ServerContext* call, const v1::MovePatientHomeRequest& req,
                               v1::MovePatientHomeResponse* resp);

/// AcceptPatient on the member that owns the patient in the new home: the
/// part is gathered; at the last, the patient is registered with its
/// records (one synced batch, sealed under a new key), its alerts loaded
/// by the alert hub. ALREADY_EXISTS when the patient is registered here.
grpc::Status accept_patient(service_env& env, patient_arrivals& arrivals, const v1::AcceptPatientRequest& req,
                            v1::Patient* resp);

}  // namespace healthtwin::services
