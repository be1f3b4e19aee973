#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/error.hpp>

namespace healthtwin::storage {

class store;
enum class column : uint8_t;

/// Moving one shard's stored state from its old owner to its new one
/// (docs/adr/0014). The protocol around it — fencing the shard, the
/// checkpoint before the export, the in-memory hand-over — is the caller's.

/// One stored record, as it travels.
struct shard_entry {
  column col;
  std::string key;
  std::string value;
};

/// Every record of `shard`, in chunks of about `chunk_bytes` handed to
/// `out` (a failure it returns stops the export): first the `keys` entries
/// of the twins registered in the shard (owner to key ref, key ref to
/// wrapped key) and every erasure marker of the store (they name no
/// shard), then the registry, twins (snapshots and sequence windows,
/// patient parts' included), series and alerts (records, active index,
/// silences). Values go as stored (sealed values stay sealed: members of a
/// cluster share the node key).
caf::error export_shard(store& s, uint32_t shard, size_t chunk_bytes,
                        const std::function<caf::error(std::vector<shard_entry>&&)>& out);

/// Writes one exported chunk on the new owner, `keys` entries first;
/// synced when `sync` (else the caller syncs once after several chunks,
/// store::sync_wal). Twin snapshots start over at `log_position` (`applied_lsn`), the
/// new owner's last committed log position: positions of the old owner's
/// log mean nothing here, and whatever this log holds of the shard up to
/// now (from an earlier time this node owned it) is older than the
/// snapshot. invalid_record naming the entry when a key is not of the
/// shard or a snapshot does not parse.
caf::error import_shard_chunk(store& s, uint32_t shard, std::vector<shard_entry>&& chunk,
                              uint64_t log_position, bool sync = true);

/// Deletes every record of `shard` (synced), the `keys` entries of its
/// twins included: once the new owner has them, what the old owner keeps
/// of the shard elsewhere (its log tail, alert events) is unreadable here.
caf::error drop_shard(store& s, uint32_t shard);

}  // namespace healthtwin::storage
