#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/ingest_probe.hpp"
#include "actors/ingest/sequencer_jobs.hpp"
#include "actors/ingest/shard_fence.hpp"
#include "actors/models/sequence_window.hpp"

namespace healthtwin::storage {
class store;
class registry;
}  // namespace healthtwin::storage

namespace healthtwin::actors {

/// One group commit of the ingest log, assembled from the jobs the
/// sequencer takes and written as one record with one fsync:
///  - add(ingest_job&) checks each reading against its device's (or patient
///    part's) sequence window and the registry, and adds the fresh ones to
///    the entry of its device;
///  - add(input_job&) adds a clinician's input as an entry of its patient;
///  - add_reset() adds a device's forgotten sequence numbers (the sequencer
///    gives it a commit of its own);
///  - flush() writes the record, then acknowledges every job of the commit
///    and hands the batch to `dispatch` (the twins), in log order. When the
///    write fails, the windows are put back and every job fails as a whole.
/// Sequencer thread only; position() and accepted() from any thread.
class group_commit {
public:
  using dispatch_fn = std::function<void(const committed_batch_ptr&)>;

  group_commit(storage::store& store, storage::registry& registry, device_directory& dir, const shard_fence& fence,
               ingest_probe& probe, dispatch_fn dispatch);

  void add(ingest_job& j);
  void add(input_job& j);
  void add_reset(const reset_device_sequence& c, ingest_sequencer::registry_callback done);
  void flush();

  /// The last committed log position (set by the log replay at start).
  uint64_t position() const { return position_.load(); }
  /// The number of the commit being assembled (directory_entry::commit_stamp).
  uint64_t stamp() const { return stamp_; }
  void set_position(uint64_t p) { position_.store(p); }
  /// Readings committed since start.
  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }

private:
  struct reset_ack {
    ingest_sequencer::registry_callback done;
    registry_result result;
  };

  void begin();
  void reject(ingest_job& j, const ingest_group& g, const ingest_reading& r, rejection_reason why,
              std::string_view field, std::string description);
  bool refused_moving(ingest_job& j, const ingest_group& g, uint32_t shard);
  caf::expected<directory_entry*> lookup_part_of_patient(const ingest_group& g);
  // The entry's window is about to change in this commit: keep the old one
  // (undone if the write fails) and mark it for the next checkpoint.
  void touch(directory_entry* e, const std::string& window_name);
  void add_readings(ingest_job& j, const ingest_group& g, directory_entry* e);

  storage::store& store_;
  storage::registry& registry_;
  device_directory& dir_;
  const shard_fence& fence_;
  ingest_probe& probe_;
  dispatch_fn dispatch_;

  std::atomic<uint64_t> position_{0};
  std::atomic<uint64_t> accepted_{0};

  std::shared_ptr<committed_batch> batch_;
  uint64_t stamp_ = 0;
  std::vector<std::pair<directory_entry*, models::sequence_window>> undo_;
  std::vector<ingest_job*> jobs_;
  std::vector<input_job*> inputs_;
  std::vector<reset_ack> resets_;
  // Devices of this commit whose duplicates go to their (local) patient
  // again, and their patient-only entry in it.
  std::unordered_map<const directory_entry*, uint32_t> redelivered_;
};

}  // namespace healthtwin::actors
