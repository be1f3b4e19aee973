#pragma once

#include <cstdint>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

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
/// Messages:
///  (apply, shard_work)                 from the ingest sequencer, in log order
///  (apply, replay_work)                from its log replay
///  (checkpnt, checkpoint_round_ptr)    snapshot dirty twins, then count down the round
///  (dev_view, name) -> device_view
///  (pat_view, name) -> patient_view
///  (series, name, uint8 metric) -> series_cursor
///  (registry, patient name)            the registry record changed: reload
///  (count) -> twin_counts
///  (forget)                            stop every twin without a snapshot (hand-off)
///  (shutdown)                          stop every twin, then the shard
/// `ctx` and `metrics` must outlive the actors.
std::vector<caf::actor> spawn_shards(caf::actor_system& sys, uint32_t shards,
                                     const twin_context& ctx, prometheus::Registry& metrics);

}  // namespace healthtwin::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::shard_work)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::replay_work)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::twin_counts)
