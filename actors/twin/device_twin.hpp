#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/twin/twin.hpp"

namespace healthtwin::actors {

/// The state of a device twin: what its actor holds, and what a shard
/// holds for a device it replays without one (see shard.hpp).
///
/// A million of these live in a node: the state stays within 64 bytes so
/// that CAF's actor allocation fits tcmalloc's 1,152-byte size class (see
/// docs/benchmarks.md). It keeps neither its name nor the node's twin
/// context: the shard passes both with every call that needs them.
struct device_state {
  uint64_t applied_position = 0;
  uint64_t last_sequence = 0;  // the window itself is the sequencer's
  int64_t last_reading_ms = 0;
  int64_t last_receive_ms = 0;
  int64_t battery_time_ms = 0;
  double battery = 0;
  uint64_t readings_accepted = 0;
  bool has_battery = false;
  bool dirty = false;
  bool unassigned_alert = false;  // a device-unassigned alert is open

  /// Loads the stored snapshot (none: a fresh device).
  void load(const std::string& twin_name, const twin_context* ctx);
  std::string encode() const;

  /// Applies this device's entry of `batch` (a device appears at most once
  /// per batch). Idempotent: a batch at or below applied_position was
  /// already reflected (replay after a crash). Alert changes go to
  /// ctx->alert_hub (in the order they arise: one thread enqueues them).
  void apply(const committed_batch& batch, uint32_t entry, const twin_context* ctx);

  device_view view() const;

private:
  void check_assignment(const committed_batch& batch, const device_entry& e,
                        const twin_context* ctx);
};

/// Spawns the twin of a device. It activates on its first message from
/// `replayed` (a state its shard applied a log replay to, see shard.hpp) or
/// else from its snapshot. Handles apply, (snapshot, name) (replies
/// snap_done to the sender) and view -> device_view. It keeps no copy of
/// its name.
device_twin_actor spawn_device_twin(caf::actor_system& sys, std::string name,
                                    const twin_context* ctx,
                                    std::optional<device_state> replayed = std::nullopt);

}  // namespace healthtwin::actors
