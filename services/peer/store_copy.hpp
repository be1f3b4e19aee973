#pragma once
// A copy of a replicated store for a voter that fell behind its group's
// snapshot (ADR 0040): the leader streams a checkpoint of its store (the
// RocksDB files as they are on disk, sealed with the node key the voters
// share) through a replication tunnel; the voter writes it beside its data
// directory and installs it at its next start, keeping its Raft state.
//
// Stream: per file, u32 name size (1-255), name (no '/'), u64 size, bytes;
// then u32 0, u64 the store's replicated index, and "HTCE".

#include <cstdint>
#include <string>

namespace healthtwin::storage {
class store;
}

namespace healthtwin::services {

/// Writes a checkpoint of `store` (made in `scratch`, which must not exist;
/// removed after) to `fd`. Empty, or why it failed.
std::string send_store_copy(storage::store& store, const std::string& scratch, int fd);

/// Reads a copy from `fd` into `staged` (made complete and synced, then
/// renamed there; anything there before is replaced). Refuses names with a
/// '/', files over `max_bytes` in all, a stream that ends early or reads
/// nothing for `idle_timeout_s`. Empty, or why it failed; `index` gets the
/// copy's replicated index.
std::string receive_store_copy(int fd, const std::string& staged, uint64_t& index,
                               uint64_t max_bytes = uint64_t{1} << 42, int idle_timeout_s = 60);

/// At a node's start, before its store opens: a complete copy staged for
/// `data_dir` (at `staged_path(data_dir)`) becomes the data directory; the
/// directory's "raft" subdirectory (the voter's Raft state) moves into it.
/// Safe to run again after a crash in between. Empty (and `installed`
/// false when there was none), or why it failed.
std::string install_staged_copy(const std::string& data_dir, bool& installed);

/// Where a copy for `data_dir` is staged.
std::string staged_path(const std::string& data_dir);

}  // namespace healthtwin::services
