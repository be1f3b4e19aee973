#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "healthtwin/v1/registry.grpc.pb.h"
#include "services/hl7/ack.hpp"
#include "services/hl7/hl7_message.hpp"

namespace healthtwin::hl7 {

/// A bed: PV1-3 (or PV1-6) point of care ^ room ^ bed.
struct bed_location {
  std::string ward, room, bed;
  bool empty() const { return ward.empty() && room.empty() && bed.empty(); }
  /// "ward^room^bed", the bed map's key.
  std::string key() const { return ward + "^" + room + "^" + bed; }
};

/// What an ADT message says for us.
struct adt_event {
  std::string trigger;     ///< A01 admit, A02 transfer, A03 discharge, A08 update
  std::string patient_id;  ///< PID-3.1, lower-cased: a valid patient id
  bed_location location;   ///< PV1-3: the (new) bed
  bed_location prior;      ///< PV1-6: the bed before a transfer
};

/// Reads PID-3 and PV1-3/PV1-6 of an A01/A02/A03/A08; nullopt with `why`
/// naming the field when the patient id is missing or not a valid id, or an
/// admit or transfer has no bed.
std::optional<adt_event> read_adt(const message& m, const std::string& trigger, error& why);

/// Which devices stand at which bed: a JSON object from "ward^room^bed" to
/// device ids, e.g. {"ICU^1^3": ["mon-7", "pump-2"]} (docs/hl7.md).
class bed_map {
public:
  static std::optional<bed_map> load(const std::string& path, std::string& why);
  static std::optional<bed_map> parse(const std::string& json, std::string& why);
  const std::vector<std::string>& devices(const bed_location& b) const;

private:
  std::map<std::string, std::vector<std::string>> beds_;
};

/// Applies ADT events through the node's RegistryService (a service token):
/// admit creates or updates the patient's ward and bed and assigns the
/// bed's devices to the patient (unassigning them from anyone else first);
/// transfer does the same for the new bed after unassigning the patient's
/// devices of the prior one; discharge unassigns the patient's devices;
/// update changes ward and bed only. Every call is audited by the node.
/// Idempotent: a resent event changes nothing more.
class adt_handler {
public:
  adt_handler(std::string tenant, bed_map beds, v1::RegistryService::StubInterface& registry,
              std::chrono::seconds deadline);

  /// Errors (empty: applied); each names what failed.
  std::vector<ack_error> apply(const adt_event& e);

private:
  grpc::Status upsert_patient(const adt_event& e, v1::Patient& out);
  grpc::Status assign(const std::string& device, const std::string& patient);
  grpc::Status unassign_from(const std::string& patient, const std::vector<std::string>& devices);
  void deadline(grpc::ClientContext& ctx) const;

  std::string tenant_;
  bed_map beds_;
  v1::RegistryService::StubInterface& registry_;
  std::chrono::seconds deadline_;
};

}  // namespace healthtwin::hl7
