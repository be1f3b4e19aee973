#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "actors/models/metric.hpp"
#include "actors/models/sequence_window.hpp"
#include "storage/registry.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

/// No entry index in the commit being assembled.
inline constexpr uint32_t no_entry = UINT32_MAX;

/// What the sequencer knows about a device: registry facts and the
/// authoritative sequence window (rebuilt from snapshot + log on first use).
struct directory_entry {
  /// The registry facts and the stored window are read. An entry a log
  /// replay made is not: it holds only the numbers the replay admitted
  /// until the device's first lookup reads the registry and merges the
  /// stored window in, or the checkpoint that writes it merges that
  /// (write_checkpoint).
  bool loaded = true;
  /// A replay met a reset of the device's sequence numbers: the stored
  /// window (older than it) is not merged in; what the replay admitted
  /// after the reset is the whole window.
  bool stored_superseded = false;
  models::device_type type{};
  bool decommissioned = false;
  bool window_dirty = false;  // changed since the last checkpoint
  std::string patient;
  models::sequence_window window;
  uint64_t commit_stamp = 0;  // commit that last touched this entry
  uint32_t entry = no_entry;  // its entry index in that commit
};

/// A window to write with a checkpoint; `partial`: only what a log replay
/// admitted (see directory_entry::loaded).
struct window_copy {
  std::string name;  // a copy: a hand-off may forget the directory entry meanwhile
  models::sequence_window window;
  bool partial = false;
  bool superseded = false;  // partial, and the stored window is older than a reset
};

/// The sequencer's directory: per device (and per patient part, named by
/// storage::key_codec::part_window_name) its registry facts and its
/// authoritative sequence window, read on first use; which windows changed
/// since the last checkpoint. Entries have stable addresses until
/// forget_shards erases them. Sequencer thread only, except load_window
/// (reads the store alone: the checkpoint's helper thread calls it).
class device_directory {
public:
  device_directory(storage::store& store, storage::registry& registry) : store_(store), registry_(registry) {}

  /// A device's entry; nullptr: no such device. Reads the registry facts
  /// and the stored window on first use (merging in what a replay admitted).
  caf::expected<directory_entry*> lookup(const std::string& device);

  /// A device's entry for a log replay, which reads nothing: the registry
  /// and the stored window are read on the device's first lookup after it
  /// (a replay touching a million cold devices spent a fifth of its time
  /// reading their windows). Every name in the log was registered, and
  /// devices are never deleted.
  directory_entry* lookup_for_replay(const std::string& device);

  /// The window of a patient part's readings (patient and device), loaded
  /// on first use.
  caf::expected<directory_entry*> lookup_part(const std::string& patient, const std::string& device);

  /// The entry of `name` if it is in memory; nullptr otherwise.
  directory_entry* find(const std::string& name);

  /// The stored window of `name` (empty when none is stored).
  caf::error load_window(const std::string& name, models::sequence_window& out) const;

  /// `e` (the entry of `name`) changed: its window goes with the next checkpoint.
  void mark_dirty(const std::string& name, directory_entry* e);

  /// Takes the windows changed since the last checkpoint (copies); only
  /// those of shards `in` marks when it is given.
  std::vector<window_copy> take_dirty(const std::vector<bool>* in = nullptr);

  /// A checkpoint that took `windows` failed: they go with the next one
  /// (those still here: a hand-off may have forgotten some since).
  void restore_dirty(const std::vector<window_copy>& windows);

  /// Forgets the entries of the shards `in` marks (handed over or adopted).
  void forget_shards(const std::vector<bool>& in);

  /// Bounding the directory (docs/adr/0035): a checkpoint was written at
  /// `now` while commits were numbered up to `stamp`. Every entry whose
  /// window is not dirty is then stored as it is in memory.
  void checkpoint_written(uint64_t stamp, std::chrono::steady_clock::time_point now);

  /// Forgets entries no commit touched for `idle` (since the newest
  /// checkpoint written at least that long ago) whose window is stored; the
  /// next lookup reads them again. Looks at `buckets` hash buckets from
  /// where the last call stopped, so that a directory of millions costs the
  /// sequencer a little at a time. Only while no checkpoint is in flight
  /// (its windows are taken but not stored yet). The number forgotten.
  size_t evict_cold(std::chrono::steady_clock::time_point now, std::chrono::milliseconds idle,
                    size_t buckets);

  size_t size() const noexcept { return entries_.size(); }

private:
  storage::store& store_;
  storage::registry& registry_;
  std::unordered_map<std::string, directory_entry> entries_;
  // Entries whose window changed since the last checkpoint (map nodes are
  // stable: only forget_shards erases entries, and takes theirs out of here).
  std::vector<std::pair<const std::string*, directory_entry*>> dirty_;
  // Checkpoints written (time, commit stamp), oldest first; and where the
  // eviction sweep goes on.
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> written_;
  uint64_t cold_before_ = 0;  // entries last touched before this commit are cold
  size_t sweep_bucket_ = 0;
  std::vector<std::string> cold_;  // scratch of evict_cold
};

}  // namespace healthtwin::actors
