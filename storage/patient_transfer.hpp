#pragma once
// Moving a patient's stored records to another region (RegistryService.
// MovePatientHome; docs/multi-region.md, "Moving a patient's home").

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace healthtwin::storage {

class store;

/// One stored record of a patient as it travels between regions: opened
/// (regions share no keys; the receiver seals it under its own), and keyed
/// without the shard, which differs between clusters.
struct patient_entry {
  enum class kind : uint8_t {
    snapshot = 1,  ///< the twin's snapshot; key empty
    series = 2,    ///< a series chunk; key: metric (1) chunk number (4)
    alert = 3,     ///< an alert record; key: its id
    active = 4,    ///< an alert is active; key: its id, no value
    silence = 5,   ///< a silence; key: its metric ("" = all)
  };
  kind what = kind::snapshot;
  std::string key;
  std::string value;
};

/// Every record keyed by `patient`: its snapshot, series chunks, alert
/// records, active index and silences, opened. Not its registry record
/// (the caller sends the fields), not its patient parts' sequence windows
/// (its devices stay where they are registered), not its alert events
/// (the alert stream's history stays with the region that raised them).
caf::expected<std::vector<patient_entry>> export_patient(store& s, std::string_view patient);

/// Writes records exported by another region for `patient`, who must not
/// be registered here (the caller registers it in the same batch: `batch`
/// is written by the caller, synced). Values are sealed under the
/// patient's key here (made now); the snapshot restarts at `log_position`
/// (this node's log), its device health cleared (the devices stayed
/// behind). invalid_record naming the entry (its index and kind) when a key
/// or value is not one of `patient`'s: an alert or silence of another
/// patient, a snapshot or series chunk that does not parse.
class write_batch;
caf::error import_patient(store& s, write_batch& batch, std::string_view patient,
                          const std::vector<patient_entry>& entries, uint64_t log_position);

/// The entries' kind as a word, for messages.
const char* kind_name(patient_entry::kind k);

}  // namespace healthtwin::storage
