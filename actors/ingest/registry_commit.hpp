#pragma once

#include <functional>
#include <string>
#include <vector>

#include "actors/ingest/sequencer_jobs.hpp"
#include "actors/shard/shard.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

class device_directory;
class shard_fence;

/// Commits a run of consecutive registry commands between two group commits:
/// registry_rules fills one write batch, one synced write, then the device
/// directory and the twin index take the changes, the changed patients'
/// twins reload their record, watchers of the changed devices are told,
/// and every caller is answered. An erasure's
/// caller is answered only once its twin deleted its records (after every
/// batch already dispatched to it); erased patients' names and values are
/// purged after the next checkpoint (`purge_later`). A failed write fails
/// every command that had not already failed on its own.
/// Sequencer thread only.
class registry_commit {
public:
  registry_commit(storage::store& store, storage::registry& registry, device_directory& dir,
                  shard_fence& fence, const std::vector<shard_actor>& shards, twin_index* index,
                  const twin_changes* changes, std::function<void(const std::string& patient)> purge_later);

  /// Runs the registry jobs [first, last) of `jobs` as one commit.
  void run(std::vector<sequencer_job>& jobs, size_t first, size_t last);

private:
  void hand_over_erasure(const std::string& patient, ingest_sequencer::registry_callback done,
                         registry_result result);

  storage::store& store_;
  storage::registry& registry_;
  device_directory& dir_;
  shard_fence& fence_;
  const std::vector<shard_actor>& shards_;
  twin_index* index_;
  const twin_changes* changes_;  // devices changed (watches); may be null
  std::function<void(const std::string&)> purge_later_;
};

}  // namespace healthtwin::actors
