#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "storage/registry.hpp"

namespace healthtwin::actors {

/// Registry mutations, ordered with readings by the ingest sequencer and
/// checked by registry_rules (actors/ingest/registry_rules.hpp).
struct create_patient {
  storage::patient_record patient;
};
struct create_device {
  storage::device_record device;
};
struct assign_device {
  std::string device;
  std::string patient;  ///< empty: unassign
  /// The patient's record lives on another member, which linked (or
  /// unlinked) the device first (link_device): leave it alone here.
  bool patient_elsewhere = false;
};
/// In a cluster, on the patient's owner: adds the device to (or removes it
/// from) the patient's device list before the device's owner assigns it.
/// not_found when the patient is not registered here.
struct link_device {
  std::string patient;
  std::string device;
  bool attach = true;
};
/// Erases a patient for good (GDPR Art. 17): its data key is destroyed (all
/// its stored values unreadable at once), its registry record goes, its
/// devices are detached, its records are deleted after everything queued
/// for its twin before, and its identifiers leave the files in a background
/// purge after the next checkpoint (storage/erasure.hpp). The id cannot be
/// registered again.
struct erase_patient {
  std::string patient;
  /// The end of a move to another region (RegistryService.MovePatientHome):
  /// the patient's shard is fenced by the move itself, which holds it until
  /// this erasure is done.
  bool moved_away = false;
};
/// In a cluster, on a device's owner, while another member erases the
/// device's patient: detaches each of `devices` still attached to `patient`
/// and purges the patient's name from this node's files (its ingest log
/// names the patient) after the next checkpoint. Idempotent.
struct release_devices {
  std::string patient;
  std::vector<std::string> devices;
};
/// Changes the fields of `fields` named in `mask` (ward, bed, home_region,
/// spo2_scale2) of patient fields.name; refused with `aborted` unless
/// `expected_version` is 0 or the record's version.
struct update_patient {
  storage::patient_record fields;
  std::vector<std::string> mask;
  uint64_t expected_version = 0;
};
/// Takes a device out of service: detached, readings refused, never assigned
/// again (idempotent).
struct decommission_device {
  std::string device;
  /// As in assign_device: its patient's owner, another member, unlinked it.
  bool patient_elsewhere = false;
};
/// Replaces a device's desired configuration (its version becomes +1);
/// refused with `aborted` when `expected_version` is set and stale.
struct update_desired_config {
  std::string device;
  storage::device_config desired;
  std::optional<uint64_t> expected_version;
};
/// Replaces what a device reports it runs.
struct report_device_state {
  std::string device;
  storage::device_config reported;
};
/// Forgets a device's sequence numbers, so that its next reading starts
/// them afresh (a device replaced, reflashed, or wedged by a wrong number:
/// docs/api.md, "Sequence numbers"). Committed as a log entry of its own, in
/// the order of the readings around it, so a replay forgets at the same
/// place; the device's twin and (local) patient twin forget them too.
/// Readings stored before it stay.
struct reset_device_sequence {
  std::string device;
};
using registry_command = std::variant<create_patient, create_device, assign_device, erase_patient,
                                      update_patient, decommission_device, update_desired_config,
                                      report_device_state, link_device, release_devices,
                                      reset_device_sequence>;

struct registry_result {
  caf::error error;
  storage::patient_record patient;  ///< after the change (create_patient); erased record (erase_patient)
  storage::device_record device;    ///< after the change (create_device, assign_device)
};

/// Errors of ingest and registry commands (category atom "ingest").
enum class ingest_errc : uint8_t {
  overloaded = 1,       ///< queue full: retry later
  shutting_down,        ///< the node is stopping
  already_exists,       ///< create of an existing patient or device
  not_found,            ///< unknown patient or device
  failed_precondition,  ///< e.g. device attached to another patient
  invalid_argument,     ///< e.g. cross-tenant assignment
  aborted,              ///< a version check failed: read again, then retry
  moving,               ///< the shard is being handed to another member: retry shortly
};
std::string to_string(ingest_errc x);

}  // namespace healthtwin::actors

CAF_ERROR_CODE_ENUM(healthtwin::actors::ingest_errc, "ingest")
