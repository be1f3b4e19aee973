#pragma once

#include <chrono>
#include <cstddef>

namespace healthtwin::services {

/// Settings of shard hand-offs. None can change at run time.
struct handoff_settings {
  /// Records per chunk streamed to the new owner, bytes. Default 1 MiB.
  size_t chunk_bytes = size_t{1} << 20;
  /// Longest wait for the checkpoint that precedes a hand-off. Default 120 s.
  std::chrono::milliseconds checkpoint_timeout{120'000};
  /// Longest time one step's stream may take. Default 10 min.
  std::chrono::milliseconds stream_timeout{600'000};
  /// The members' stores are replicated (--replication-factor > 1): their
  /// Raft groups' voters do not follow a change of the member list yet, so
  /// a change is refused. Default false.
  bool replicated = false;
};

}  // namespace healthtwin::services
