#pragma once

#include <cstdint>
#include <functional>

#include <caf/expected.hpp>

#include "actors/ingest/batch_dispatch.hpp"
#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/shard_fence.hpp"

namespace healthtwin::storage {
class ingest_log;
}

namespace healthtwin::actors {

struct replay_counts {
  uint64_t records = 0;
  uint64_t readings = 0;
};

/// Replays the ingest log after `checkpoint` at start: each record's
/// devices' (and patient parts') sequence windows take its readings (a
/// union with the stored window; a sequence reset forgets what came
/// before), and its batch goes to the twins through `dispatch` in log
/// order, `throttle` called after each record (backpressure). Records of
/// shards this node handed over since are dispatched to nobody and leave
/// their windows alone (its log still names them until a checkpoint).
caf::expected<replay_counts> replay_log(storage::ingest_log& log, uint64_t checkpoint, device_directory& dir,
                                        const shard_fence& fence, batch_dispatch& dispatch,
                                        const std::function<void()>& throttle);

}  // namespace healthtwin::actors
