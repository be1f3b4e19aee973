#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "actors/models/metric.hpp"
#include "actors/shard/shard.hpp"
#include "actors/twin/twin.hpp"
#include "actors/ingest/registry_commands.hpp"
#include "storage/registry.hpp"

namespace prometheus {
class Registry;
}

namespace healthtwin::storage {
class store;
}

namespace healthtwin::actors {

/// Why a single reading was refused. Numbers equal
/// healthtwin.v1.RejectionReason.
enum class rejection_reason : uint8_t {
  invalid_name = 1,
  unknown_device = 2,
  invalid_metric = 3,
  metric_not_supported = 4,
  not_finite = 5,
  out_of_range = 6,
  future_timestamp = 7,
  invalid_timestamp = 8,
  invalid_sequence = 9,
  duplicate = 10,
  outside_window = 11,
  decommissioned = 12,
  /// The member owning the device's shard (or its patient's) could not be
  /// reached: resend these readings, with the same sequence numbers.
  unavailable = 13,
};
/// One more than the highest rejection_reason.
inline constexpr size_t rejection_reasons = 14;

struct reading_rejection {
  uint32_t index = 0;   ///< position of the reading in the request
  std::string field;    ///< e.g. "devices[2].sequence[5]"
  rejection_reason reason{};
  std::string description;
};

/// "devices[group].field[position]"
inline std::string reading_field(uint32_t group, std::string_view field, uint32_t position) {
  std::string s = "devices[" + std::to_string(group) + "]";
  if (!field.empty()) {
    s += '.';
    s += field;
    s += '[' + std::to_string(position) + ']';
  }
  return s;
}

/// One reading of an ingest request that passed the stateless checks.
struct ingest_reading {
  uint64_t sequence = 0;
  int64_t time_ms = 0;
  double value = 0;
  uint32_t index = 0;  ///< position in the request
  models::metric metric{};
  /// Patient parts only: the device's owner found it a duplicate (carried
  /// again after a failure). A part it found new is taken even below the
  /// part's window (the device's sequence numbers were reset).
  bool resent = false;
  /// As the device said (models::reading_quality).
  models::reading_quality quality = models::reading_quality::unspecified;
};
static_assert(sizeof(ingest_reading) == 32, "the small fields share the last word");

/// The readings of one device in a request.
struct ingest_group {
  std::string device;
  /// Patient parts only (submit_patient_parts): the patient they belong to.
  std::string patient;
  uint32_t group = 0;        ///< position of the DeviceReadings in the request
  uint32_t first_index = 0;  ///< request position of the group's first reading
  std::vector<ingest_reading> readings;
};

/// In a cluster: readings of a device this node owns, for a patient whose
/// shard another member owns (docs/adr/0013). The device's owner commits
/// them, then carries them to the patient's owner, which commits them again
/// as a patient part; a reading is acknowledged only when both did.
struct patient_part {
  std::string patient;
  std::string device;
  uint32_t group = 0;        ///< position of the DeviceReadings in the request
  uint32_t first_index = 0;  ///< request position of the group's first reading
  std::vector<reading> readings;
  std::vector<uint32_t> indexes;  ///< request position of each reading
  std::vector<bool> fresh;        ///< accepted now (else: a duplicate, resent)
};

struct ingest_result {
  caf::error error;  ///< set: nothing of the request was written
  uint32_t accepted = 0;
  std::vector<reading_rejection> rejections;
  /// Accepted and duplicate readings whose patient another member owns.
  std::vector<patient_part> patient_parts;
};


/// What a clinician enters for a patient: new settings and/or observations
/// devices cannot measure (ACVPU consciousness, supplemental oxygen). It is
/// logged and ordered with readings, so twins replay it at its position.
struct patient_input {
  std::string patient;
  std::string recorded_by;
  std::shared_ptr<const models::patient_settings> settings;  ///< null: unchanged
  std::vector<reading> observations;  ///< metric consciousness or oxygen_flow
};

/// One step of moving shards between members (docs/adr/0014), run by the
/// sequencer in the order of everything it commits:
///  - fence: work for the shards queued after it is refused `moving`
///    (readings UNAVAILABLE), work queued before it commits;
///  - checkpoint: done once a checkpoint covers everything committed so
///    far (one is started now, its twins asked at once);
///  - release: the shards were handed over: forget their devices' and
///    patient parts' windows, stop their twins, lift the fence;
///  - adopt: the shards were taken over: forget whatever stale state this
///    node held of them (windows, twins); they load from the store;
///  - unfence: lift the fence (a hand-off that failed).
struct shard_step {
  enum class kind : uint8_t { fence, checkpoint, release, adopt, unfence };
  kind what = kind::fence;
  std::vector<uint32_t> shards;
};


/// Settings of the sequencer. None can change at run time.
struct ingest_settings {
  /// Readings queued but not yet committed before new requests are refused
  /// with `overloaded`. Default 500,000.
  size_t max_queued_readings = 500'000;
  /// Work items handed to twins but not applied before the sequencer stops
  /// committing (backpressure). Default 100,000.
  int64_t max_pending_work = 100'000;
  /// How often twins are snapshotted and the log truncated behind them.
  /// Default 30 s.
  std::chrono::milliseconds checkpoint_interval{30'000};
  /// Directory entries (a device's registry facts and sequence window) that
  /// no commit touched for this long are dropped once stored, and read
  /// again on the device's next use (docs/adr/0035). 0: kept. Default 10 min.
  std::chrono::milliseconds directory_idle{600'000};
  /// ...or as soon as this many readings were committed since the last one,
  /// whichever comes first: bounds the log (and the replay after a crash)
  /// under heavy load. Default 5,000,000 (≈ 100 MB of log).
  uint64_t checkpoint_every_readings = 5'000'000;
  /// A checkpoint asks the shards to snapshot their twins one after another
  /// over this time, so that its snapshot writes (tens of MB) reach the
  /// disk beside the ingest log's fsyncs as a trickle instead of a burst
  /// that delays them. At most a quarter of checkpoint_interval. Default 2 s.
  std::chrono::milliseconds checkpoint_spread{2'000};
  /// Patient summaries for twin queries: registry changes reach it before
  /// the call that made them returns (none: not kept).
  twin_index* index = nullptr;
  /// Told of every device a registry commit changed (twin watches).
  const twin_changes* changes = nullptr;
  /// In a cluster: whether this node owns a shard (it changes with
  /// hand-offs). Patient parts of other members' patients are not delivered
  /// here but returned in ingest_result::patient_parts; readings of another
  /// member's devices are refused UNAVAILABLE, as is the replay of log
  /// records of shards handed over since. A reading that comes back
  /// DUPLICATE for a device whose patient is this node's is delivered to
  /// the patient twin again (which applies it once): its first delivery
  /// may have failed while the patient was another member's. Empty: every
  /// shard is this node's.
  std::function<bool(uint32_t shard)> owns_shard;
};

/// The single writer of a node's ingest log. Every ingest request and
/// registry mutation passes through it in one total order:
///  1. requests queue up (bounded);
///  2. its thread takes everything queued, checks each reading against the
///     registry (device exists, type measures the metric) and the device's
///     sequence window (duplicates), attributes the device's readings to the
///     patient it is attached to, and writes one log record for the whole
///     group (group commit, WAL fsynced per store settings);
///  3. only then are callers acknowledged and the batch dispatched to the
///     shards, in log order.
/// Twins are thus a pure function of the log, and replaying it after a crash
/// rebuilds them exactly once (see docs/adr/0001-ingest-sequencer.md).
///
/// Thread-safe: submit_* may be called from any thread; callbacks run on the
/// sequencer thread and must not block.
class ingest_sequencer {
public:
  using ingest_callback = std::function<void(ingest_result&&)>;
  using registry_callback = std::function<void(registry_result&&)>;

  ingest_sequencer(const ingest_settings& settings, storage::store& store,
                   std::vector<shard_actor> shards, ingest_flow& flow,
                   prometheus::Registry& metrics);
  ~ingest_sequencer();

  /// Replays the log after the last checkpoint into the twins and waits
  /// until they applied it. Call once, before start().
  caf::error recover();

  /// Starts the sequencer thread.
  void start();

  /// Queues an ingest request; `done` is called exactly once.
  void submit(std::vector<ingest_group>&& groups, size_t readings, ingest_callback done);

  /// In a cluster, on a patient's owner: queues the patient parts another
  /// member (the devices' owner) committed. Each group names its patient;
  /// duplicates are told apart by a window per patient and device, so a
  /// part resent after a failure is applied once. Readings of patients not
  /// registered here are rejected unknown_device with "no such patient".
  /// The readings reach only the patient twins. `done` is called once.
  void submit_patient_parts(std::vector<ingest_group>&& groups, size_t readings,
                            ingest_callback done);

  /// Queues a registry mutation; `done` is called exactly once.
  void submit(registry_command&& command, registry_callback done);

  /// Queues a clinician's input; `done` is called exactly once, after the
  /// input is durable (not_found: no such patient).
  void submit(patient_input&& input, registry_callback done);

  /// Queues a step of a shard hand-off; `done` is called exactly once, on
  /// the sequencer thread (must not block), when the step took effect.
  void submit(shard_step&& step, std::function<void(caf::error)> done);

  /// submit(step), waiting at most `timeout` for it to take effect
  /// (request_timeout after). For threads other than the sequencer's.
  caf::error run(shard_step&& step, std::chrono::milliseconds timeout);

  /// Commits everything queued, refuses new requests, waits until twins
  /// applied all, snapshots every twin and checkpoints the log.
  void stop();

  /// Last committed log position.
  uint64_t last_position() const;
  /// Readings accepted since start.
  uint64_t readings_accepted() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::actors

