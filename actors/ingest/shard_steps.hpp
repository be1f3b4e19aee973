#pragma once

#include <vector>

#include <caf/error.hpp>

#include "actors/ingest/sequencer_jobs.hpp"
#include "actors/shard/shard.hpp"

namespace healthtwin::actors {

class checkpointer;
class device_directory;
class group_commit;
class shard_fence;

/// A shard hand-off's steps (ADR 0014) in the sequencer's total order, each
/// run after everything queued before it committed: fence and unfence the
/// shards; checkpoint them (one checkpoint at a time: a step arriving while
/// one runs waits for its end, and hurries it); release or adopt them (their
/// windows forgotten and their twins stopped; a released shard is then
/// refused as another member's). Sequencer thread only, between commits.
class shard_steps {
public:
  shard_steps(shard_fence& fence, device_directory& dir, group_commit& commit, checkpointer& checkpoints,
              const std::vector<shard_actor>& shards)
      : fence_(fence), dir_(dir), commit_(commit), checkpoints_(checkpoints), shards_(shards) {}

  void run(shard_job& j);
  /// Runs the checkpoint steps that waited, once no checkpoint runs.
  void run_waiting();
  /// Answers the steps still waiting with `err` (the node stops).
  void fail_waiting(const caf::error& err);

private:
  void forget_shards(const shard_step& step);

  shard_fence& fence_;
  device_directory& dir_;
  group_commit& commit_;
  checkpointer& checkpoints_;
  const std::vector<shard_actor>& shards_;
  std::vector<shard_job> waiting_;
};

}  // namespace healthtwin::actors
