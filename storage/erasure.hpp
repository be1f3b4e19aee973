#pragma once

#include <cstdint>
#include <string_view>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace healthtwin::storage {

class store;
class write_batch;

/// Erasure of a patient (GDPR Art. 17), storage side. The order that makes
/// it complete is the caller's (docs/storage.md, "Erasure"):
///   1. the registry record goes and the patient's data key is destroyed
///      (store::destroy_patient_key): every stored value of the patient is
///      unreadable from then on and no new one can be written;
///   2. erase_patient_records() by the alert hub, the last actor to hear
///      of the erasure (after the twin's last write);
///   3. purge_erased() in the background: alert events of erased owners,
///      then compaction of the ranges, so the bytes leave the disk.

/// Deletes (synced) every record keyed by the patient: its snapshot, all
/// series chunks, alert records, active index and silences.
caf::error erase_patient_records(store& s, std::string_view patient);

/// What one purge removed.
struct purge_report {
  uint64_t alert_events = 0;
};

/// Deletes the alert events of erased owners (they are keyed by sequence,
/// not by owner), then flushes every memtable (retiring WAL files) and
/// compacts the patient's ranges, the ingest log, the keys and the alert
/// events, so no live file keeps the patient's identifiers or values. Run
/// after the ingest log was checkpointed past the erasure. Slow; run off
/// the data path.
caf::expected<purge_report> purge_erased(store& s, std::string_view patient);

/// Marks a purge as owed for the patient, in the batch that erases it (by
/// pseudonym: the marker never holds the name). purge_erased clears it.
void note_purge_owed(write_batch& batch, store& s, std::string_view patient);

/// How many erasures still owe their purge (the node stopped or crashed
/// before it ran).
caf::expected<size_t> purges_owed(store& s);

/// The purge for erasures whose names are gone (owed at a restart): deletes
/// every value left of an erased owner — series chunks, alerts and events
/// (enforce_retention's leftover pass) and patient snapshots — then flushes
/// and compacts every column and clears the owed marks. Slower than
/// purge_erased (it scans and compacts everything); runs once per start
/// that finds one owed.
caf::expected<purge_report> purge_all_erased(store& s);

}  // namespace healthtwin::storage
