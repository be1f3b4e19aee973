#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include <caf/expected.hpp>

#include "storage/store.hpp"

namespace healthtwin::storage {

/// The ingest log: one record per group commit of the ingest sequencer, keyed
/// by a strictly increasing position. Twin state is a materialised view of
/// it: after a restart the log is replayed from the checkpoint, and the log is
/// truncated up to the checkpoint once every twin's snapshot covers it.
///
/// Thread-safe (RocksDB); positions are assigned by the single sequencer.
class ingest_log {
public:
  explicit ingest_log(store& s) : store_(s) {}

  /// Adds a record at `position` to a batch (committed by store::write).
  static void append(write_batch& batch, uint64_t position, std::string_view record);

  /// Highest position ever written or checkpointed; 0 for a new node.
  caf::expected<uint64_t> last_position();

  /// Position up to which every twin's snapshot reflects the log.
  caf::expected<uint64_t> checkpoint();

  /// Records a new checkpoint and deletes every record at or below it.
  static void advance_checkpoint(write_batch& batch, uint64_t checkpoint);

  /// Gives back the disk of the records at or below `checkpoint` (deleted
  /// by advance_checkpoint): store::reclaim of their range. Blocks; from a
  /// background thread, after the checkpoint is written.
  caf::error reclaim(uint64_t checkpoint);

  /// Calls fn for each record with position >= from, in order, until fn
  /// returns false.
  caf::error replay(uint64_t from,
                    const std::function<bool(uint64_t position, std::string_view record)>& fn);

private:
  store& store_;
};

}  // namespace healthtwin::storage
