#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/twin/twin.hpp"

namespace prometheus {
class Registry;
}

namespace healthtwin::actors {

/// What one shard gets from one committed batch: the entries whose device,
/// and those whose patient, hash to this shard (ascending).
struct shard_work {
  committed_batch_ptr batch;
  std::vector<uint32_t> device_entries;
  std::vector<uint32_t> patient_entries;
};

/// What one shard gets from several batches of the log replay at start, in
/// log order: one message for many batches (a replay touching a million
/// cold devices spent a third of its time in per-batch messages). A device
/// without a live twin gets no actor: the shard applies its entries to the
/// device's state itself (see below).
struct replay_work {
  std::vector<shard_work> works;
};

/// Number of live twins of a shard (or a node).
struct twin_counts {
  uint64_t devices = 0;
  uint64_t patients = 0;
};

// ---- messages a shard handles ------------------------------------------------
using checkpoint_atom = caf::atom_constant<caf::atom("checkpnt")>;
using device_view_atom = caf::atom_constant<caf::atom("dev_view")>;
using patient_view_atom = caf::atom_constant<caf::atom("pat_view")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
/// (forget): the shard was handed to another member, or taken over from one
/// (docs/adr/0014): stop its twins without a snapshot and drop the states of
/// replayed devices; twins activate from the store again when asked.
using forget_atom = caf::atom_constant<caf::atom("forget")>;
/// (forget_p, patient): a patient moved here from another region (its
/// records were just written): a twin of it activated before (by a query
/// that found nothing) is stopped, so the next use loads the records.
using forget_patient_atom = caf::atom_constant<caf::atom("forget_p")>;
/// (pv_sweep): the shard's own timer: ask idle twins to passivate.
using passivate_sweep_atom = caf::atom_constant<caf::atom("pv_sweep")>;

/// (series, series_query) -> series_cursor: a patient's stored series.
struct series_query {
  std::string patient;
  uint8_t metric = 0;  ///< models::metric
};

/// (resolve, hand_resolution) -> alert_record: a clinician resolves a
/// patient's alert by hand; the twin resets its condition, the hub records it.
struct hand_resolution {
  std::string patient;
  std::string alert;
  std::string who;
  std::string note;
};

/// (erase, twin_erasure): the patient was erased (its key is already
/// destroyed); `done` runs once the alert hub deleted its records.
struct twin_erasure {
  std::string name;
  erase_completion_ptr done;
};

/// A shard's protocol: a message it does not handle, or a reply of another
/// type, fails to compile at the sender. Twins are the shard's own
/// business: only it addresses them (and they answer it untyped).
using shard_actor = caf::typed_actor<
    caf::reacts_to<apply_atom, shard_work>,   // from the ingest sequencer, in log order
    caf::reacts_to<apply_atom, replay_work>,  // from its log replay
    caf::reacts_to<health_tick_atom>,         // its own timer
    caf::reacts_to<passivate_sweep_atom>,     // its own timer
    caf::reacts_to<passivated_atom, passivation>,  // an idle twin's snapshot
    caf::reacts_to<checkpoint_atom, checkpoint_round_ptr>,  // snapshot dirty twins, count down
    caf::reacts_to<snapshot_done_atom, twin_snapshot>,      // from its twins
    caf::reacts_to<snapshot_save_atom, twin_snapshot>,
    caf::replies_to<device_view_atom, std::string>::with<device_view>,
    caf::replies_to<patient_view_atom, std::string>::with<patient_view>,
    caf::replies_to<series_atom, series_query>::with<series_cursor>,
    caf::replies_to<resolve_atom, hand_resolution>::with<alert_record>,
    caf::reacts_to<erase_atom, twin_erasure>,
    caf::reacts_to<registry_atom, std::string>,  // a patient's registry record changed: reload
    caf::replies_to<count_atom>::with<twin_counts>,
    caf::reacts_to<forget_atom>,     // stop every twin without a snapshot (hand-off)
    caf::reacts_to<forget_patient_atom, std::string>,  // a patient moved in: load it afresh
    caf::reacts_to<shutdown_atom>>;  // stop every twin, then the shard

/// Spawns the node's shard actors, one per virtual shard (index = position).
/// A shard owns the twins whose names hash to it: it activates them on first
/// use (transparently to callers), routes work and queries to them, and
/// tracks which changed since the last checkpoint.
///
/// Replay (docs/storage.md): a replay_work does not activate device
/// twins. The shard loads the state of a device without a live twin,
/// applies the entry to it and keeps it (64 bytes, not a 1 KiB actor) until
/// the next checkpoint writes its snapshot, or hands it to the device's
/// actor if one is activated first. Patient twins are activated as always:
/// their models raise the alerts.
///
/// Messages: shard_actor. `ctx` and `metrics` must outlive the actors.
std::vector<shard_actor> spawn_shards(caf::actor_system& sys, uint32_t shards,
                                      const twin_context& ctx, prometheus::Registry& metrics);

}  // namespace healthtwin::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::shard_work)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::replay_work)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::twin_counts)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::series_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::hand_resolution)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::twin_erasure)
