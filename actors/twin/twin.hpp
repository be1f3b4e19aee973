#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <boost/container/small_vector.hpp>

#include "actors/alerts/alert_hub.hpp"
#include "actors/index/twin_changes.hpp"
#include "actors/index/twin_index.hpp"
#include "actors/models/metric.hpp"
#include "actors/models/news2_score.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "actors/models/patient_model.hpp"
#include "storage/series_codec.hpp"

namespace healthtwin::storage {
class store;
}

namespace healthtwin::actors {

// ---- what twins are fed: committed ingest batches --------------------------

/// One accepted reading.
struct reading {
  uint64_t sequence = 0;
  int64_t time_ms = 0;
  double value = 0;
  models::metric metric{};
  /// As the device said (models::effective_quality resolves unspecified).
  models::reading_quality quality = models::reading_quality::unspecified;
};
// Batches carry millions of these: the one-byte fields share the last word.
static_assert(sizeof(reading) == 32);

/// The accepted readings of one device in one batch, attributed to the
/// patient the device was attached to when they were accepted (may be empty).
/// A clinician's entry (`clinician`) names the clinician in `device` and
/// carries observations devices cannot measure and/or new settings; it
/// concerns only the patient twin.
struct device_entry {
  std::string device;
  std::string patient;
  std::vector<reading> readings;
  bool clinician = false;
  /// A patient part committed first by the device's owner, another member:
  /// for the patient twin only.
  bool patient_only = false;
  /// The device's sequence numbers were reset here (no readings): twins
  /// forget the numbers they kept for it (reset_device_sequence).
  bool sequence_reset = false;
  std::shared_ptr<const models::patient_settings> settings;  ///< null: unchanged
};

/// One group commit of the ingest sequencer, shared read-only by every twin
/// it concerns. A device appears at most once per batch.
struct committed_batch {
  uint64_t position = 0;          ///< ingest log position
  int64_t receive_time_ms = 0;    ///< node wall clock at commit
  std::vector<device_entry> entries;
};

using committed_batch_ptr = std::shared_ptr<const committed_batch>;

struct twin_context;

/// Work for one twin: the entries of `batch` that concern it, ascending.
/// Carries the node's twin context so that device twins need not store it.
struct twin_work {
  committed_batch_ptr batch;
  /// A device twin gets one entry; a patient twin one per device of the
  /// batch, rarely more than two: held inline, no allocation per message.
  boost::container::small_vector<uint32_t, 2> entries;
  const twin_context* ctx = nullptr;
};

/// (snapshot, snapshot_request): a checkpoint asks a twin for its snapshot
/// (a device twin keeps neither its name nor the node's twin context: the
/// shard passes both).
struct snapshot_request {
  std::string name;
  const twin_context* ctx = nullptr;
  /// (passivate, snapshot_request) only: given back in the passivation so
  /// that the shard knows which of its requests is answered.
  uint32_t token = 0;
};

/// Counts work handed to shards and twins that is not yet applied; the
/// ingest sequencer waits when it grows too large (backpressure) and
/// recovery waits for it to reach zero.
struct ingest_flow {
  std::atomic<int64_t> pending{0};
};

/// Live twin actors of a node, maintained by the shards.
struct twin_counters {
  std::atomic<uint64_t> devices{0};
  std::atomic<uint64_t> patients{0};
};

/// A checkpoint in progress: every shard snapshots its dirty twins, the
/// last one calls on_done(ok). Shared by the sequencer and all shards.
struct checkpoint_round {
  uint64_t position = 0;
  std::atomic<uint32_t> shards_left{0};
  std::atomic<bool> failed{false};
  std::function<void(bool ok)> on_done;
};

using checkpoint_round_ptr = std::shared_ptr<checkpoint_round>;

// ---- what twins answer ------------------------------------------------------

/// A device twin's state as a query sees it (the caller knows the name).
struct device_view {
  uint64_t applied_position = 0;
  uint64_t last_sequence = 0;
  int64_t last_reading_time_ms = 0;  ///< device clock
  int64_t last_receive_time_ms = 0;  ///< node clock
  bool has_battery = false;
  double battery_percent = 0;
  uint64_t readings_accepted = 0;
};

struct vital_view {
  models::metric metric{};
  double value = 0;
  int64_t time_ms = 0;
  std::string source_device;
};

struct patient_view {
  std::string name;
  std::string ward;
  std::string bed;
  std::vector<std::string> devices;
  std::vector<vital_view> vitals;
  models::news2_result news2;
  models::patient_settings settings;  ///< clinician settings in force
  std::vector<models::news2_point> news2_history;
  std::optional<int> news2_change_1h;
  uint64_t readings_applied = 0;
};

/// The part of a patient's series still in memory, and how many chunks of
/// it are already stored (read those with storage::series_table).
struct series_cursor {
  std::vector<storage::sample> open_samples;
  uint32_t closed_chunks = 0;
};

// ---- settings and shared context --------------------------------------------

/// Settings of twins. None can change at run time.
struct twin_settings {
  /// Samples per stored series chunk. Default 256.
  uint32_t chunk_samples = 256;
  /// A chunk is closed once it spans this much device time. Default 10 min.
  int64_t chunk_span_ms = 10 * 60 * 1000;
  /// NEWS2 freshness limits.
  models::news2_settings news2;
  /// How often patient twins check their devices for silence. Default 10 s.
  int64_t device_tick_ms = 10'000;
  /// A twin that got no work and no query for this long is passivated: its
  /// snapshot written, its actor stopped (docs/adr/0035). 0: never.
  /// Default 10 min.
  int64_t passivate_after_ms = 600'000;
};

/// What every twin of a node shares. Owned by the composition root; must
/// outlive the actor system.
struct twin_context {
  storage::store* store = nullptr;
  alert_hub_actor alert_hub;
  ingest_flow* flow = nullptr;
  twin_counters* counters = nullptr;
  twin_settings settings;
  /// Node clock (ms since the epoch) for device health; tests inject one.
  std::function<int64_t()> clock;
  /// `clock`'s time, or the wall clock's when none is injected.
  int64_t now_ms() const { return clock ? clock() : models::wall_clock_ms(); }
  /// Patient summaries for twin queries (none: not kept).
  twin_index* index = nullptr;
  /// Told of each change routed to a twin (watches); none: not told.
  const twin_changes* changes = nullptr;
};

// ---- messages ------------------------------------------------------------------
using apply_atom = caf::atom_constant<caf::atom("apply")>;          ///< (apply, twin_work)
/// (snapshot, snapshot_request) -> (snap_done, twin_snapshot) to the shard:
/// see answer_snapshot.
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;
using snapshot_done_atom = caf::atom_constant<caf::atom("snap_done")>;
using snapshot_save_atom = caf::atom_constant<caf::atom("snap_save")>;  ///< (snap_save, twin_snapshot)
using view_atom = caf::atom_constant<caf::atom("view")>;            ///< (view) -> *_view
using series_atom = caf::atom_constant<caf::atom("series")>;        ///< (series, metric) -> series_cursor
using registry_atom = caf::atom_constant<caf::atom("registry")>;    ///< (registry): reload record
/// (resolve, alert_action) -> alert_record: a clinician resolves an alert by
/// hand; the patient twin resets its condition and forwards to the hub.
using resolve_atom = caf::atom_constant<caf::atom("resolve")>;
/// The patient was erased (its key is already destroyed). Shard (erase,
/// twin_erasure): drops the twin. Patient twin (erase, erase_completion_ptr):
/// after everything queued before it, passes the erasure on to the alert
/// hub (which deletes the records) and quits.
using erase_atom = caf::atom_constant<caf::atom("erase")>;
/// (health_tick): a patient twin checks its devices on the node clock. Its
/// shard sends it to every patient twin it holds every device_tick_ms (one
/// timer per shard, not one per twin: a timer costs the clock thread a
/// lock and a wake-up, and 100,000 twins activate at a cold restart).
using health_tick_atom = caf::atom_constant<caf::atom("pt_tick")>;
/// (passivate, snapshot_request): the twin's shard found it idle. It hands
/// over its snapshot in (passivated, passivation) and keeps running; the
/// shard stops it if nothing was sent to it since (docs/adr/0035).
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;
using passivated_atom = caf::atom_constant<caf::atom("passivated")>;

/// A twin's snapshot for its shard to write: (snap_done, twin_snapshot)
/// answers a checkpoint's request (`ok` false: it could not be sealed;
/// `value` empty: nothing changed since the last one); (snap_save,
/// twin_snapshot) is state that is not in the log, to write at once.
struct twin_snapshot {
  bool ok = true;
  bool is_patient = false;
  std::string name;
  std::string value;
};

/// A twin's answer to (passivate, snapshot_request): its snapshot (`value`
/// empty: the stored one is current) and when its shard must wake it again
/// although nothing is sent to it (node clock, ms; 0: never): a device of
/// the patient that would be reported offline then.
struct passivation {
  twin_snapshot snapshot;
  uint32_t token = 0;
  int64_t wake_ms = 0;
};

/// The twins' protocols. Only their shard addresses them; a message a twin
/// does not handle fails to compile at the sender.
using device_twin_actor = caf::typed_actor<
    caf::reacts_to<apply_atom, twin_work>,
    caf::reacts_to<snapshot_atom, snapshot_request>,
    caf::reacts_to<passivate_atom, snapshot_request>,
    caf::replies_to<view_atom>::with<device_view>>;
using patient_twin_actor = caf::typed_actor<
    caf::reacts_to<apply_atom, twin_work>,
    caf::reacts_to<health_tick_atom>,
    caf::reacts_to<snapshot_atom, snapshot_request>,
    caf::reacts_to<passivate_atom, snapshot_request>,
    caf::replies_to<view_atom>::with<patient_view>,
    caf::replies_to<series_atom, uint8_t>::with<series_cursor>,
    caf::reacts_to<registry_atom>,
    caf::replies_to<resolve_atom, alert_action>::with<alert_record>,
    caf::reacts_to<erase_atom, erase_completion_ptr>>;

/// spawn_device_twin: see device_twin.hpp.

/// Adds every registered, not erased patient to `index` with its ward, bed
/// and the NEWS2 its last snapshot recorded (unknown when there is none, it
/// was never scored, or the snapshot does not read), so that a restarted
/// node's twin queries know them without activating any twin. Patients the
/// index knows already keep their fresher summary. In a cluster only the
/// patients of the shards `include` accepts (those this node owns).
caf::error seed_twin_index(storage::store& store, twin_index& index,
                           const std::function<bool(uint32_t shard)>& include = {});

/// Spawns the twin of a patient. It activates from the registry and its
/// snapshot on its first message. Handles apply, snapshot, passivate, view
/// -> patient_view, series -> series_cursor, registry, resolve, erase.
/// Sends alert changes to ctx->alert_hub; checks its devices on each
/// health_tick, reporting none offline before `grace_from_ms` + the offline
/// time (node clock: when its shard became live here, so that a restart or
/// a hand-off does not report devices that could not send meanwhile, and a
/// twin activated again after passivation keeps its offline alerts);
/// sends snapshots of state that is not in the log to `shard`.
patient_twin_actor spawn_patient_twin(caf::actor_system& sys, std::string name,
                                      const twin_context* ctx, caf::actor_addr shard,
                                      int64_t grace_from_ms);

/// Snapshots are written by the twin's shard, in a few large batches per
/// checkpoint: one RocksDB write per twin queued behind the ingest log's
/// fsyncs and stalled the actor threads (and so the acks) at every
/// checkpoint. A twin hands its snapshot over, sealed as the twins table
/// stores it, and clears `dirty`; a failed write makes the shard ask every
/// twin again next time. Since one shard writes them in the order they came,
/// a later snapshot is never overwritten by an earlier one.
///
/// answer_snapshot answers a checkpoint's request with (snap_done,
/// twin_snapshot); save_snapshot sends state that is not in the log
/// (snap_save, twin_snapshot) for the shard to write at once.
void answer_snapshot(caf::local_actor* self, const twin_context* ctx,
                     models::twin_kind kind, const std::string& name, bool& dirty,
                     const std::function<std::string()>& encode);
void save_snapshot(caf::local_actor* self, const caf::actor_addr& shard,
                   const twin_context* ctx, models::twin_kind kind, const std::string& name,
                   bool& dirty, const std::function<std::string()>& encode);
/// Answers (passivate, request) with (passivated, passivation): the
/// snapshot as answer_snapshot hands it over, the request's token and
/// `wake_ms`.
void answer_passivation(caf::local_actor* self, const twin_context* ctx,
                        models::twin_kind kind, const snapshot_request& request, bool& dirty,
                        const std::function<std::string()>& encode, int64_t wake_ms);

}  // namespace healthtwin::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::twin_work)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::snapshot_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::checkpoint_round_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::twin_snapshot)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::passivation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::device_view)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::patient_view)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::series_cursor)
