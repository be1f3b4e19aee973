#include "actors/ingest/shard_steps.hpp"

#include <caf/all.hpp>

#include "actors/ingest/checkpointer.hpp"
#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/group_commit.hpp"
#include "actors/ingest/shard_fence.hpp"

namespace healthtwin::actors {

void shard_steps::run(shard_job& j) {
  switch (j.step.what) {
    case shard_step::kind::fence:
      fence_.fence(j.step.shards);
      j.done(caf::none);
      return;
    case shard_step::kind::unfence:
      fence_.lift(j.step.shards);
      j.done(caf::none);
      return;
    case shard_step::kind::checkpoint:
      // One at a time: so no checkpoint after the flip holds a window of
      // these shards.
      if (!checkpoints_.idle()) {
        waiting_.push_back(std::move(j));
        checkpoints_.hurry();  // a hand-off waits
        return;
      }
      checkpoints_.start(commit_.position(), commit_.accepted(), j.step.shards, std::move(j.done));
      return;
    case shard_step::kind::release:
    case shard_step::kind::adopt:
      // A checkpoint in progress holds copies of the windows it writes,
      // none of these shards' (fenced and checkpointed before, or not this
      // node's).
      forget_shards(j.step);
      j.done(caf::none);
      return;
  }
}

// Forgets the windows of devices and patient parts in `step.shards` and has
// their twins stopped. Between commits (the commit being assembled points
// into the directory).
void shard_steps::forget_shards(const shard_step& step) {
  dir_.forget_shards(fence_.mask(step.shards));
  for (auto s : step.shards)
    caf::anon_send(shards_[s], forget_atom::value);
  if (step.what == shard_step::kind::release)
    fence_.lift(step.shards);  // not owned any more: refused as another member's
}

void shard_steps::run_waiting() {
  if (!checkpoints_.idle() || waiting_.empty())
    return;
  auto steps = std::move(waiting_);
  waiting_.clear();
  for (auto& j : steps)
    run(j);
}

void shard_steps::fail_waiting(const caf::error& err) {
  for (auto& j : waiting_)
    j.done(err);
  waiting_.clear();
}

}  // namespace healthtwin::actors
