#pragma once
// What a member keeps of the cluster in its store (default column family,
// meta): the cluster state it last knew, and the shards it handed over
// whose stored copy it still has to drop (docs/adr/0014-shard-hand-off.md).
// The state is kept as the bytes actors/cluster encodes; this file knows
// where it lives and that it is written synced, not what it says.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace healthtwin::storage {

class store;

/// Where the cluster state lives (meta/"cluster"), for error messages.
inline constexpr std::string_view cluster_state_key = "cluster";

/// The persisted cluster state's bytes; nullopt when this store has none (a
/// new data directory, or a cluster that never changed).
caf::expected<std::optional<std::string>> load_cluster_record(store& db);

/// Writes the cluster state's bytes durably (synced).
caf::error persist_cluster_record(store& db, std::string_view bytes);

/// The shards whose stored copy a hand-off still owes a drop (it stopped
/// between giving them away and dropping them). Items that do not name a
/// shard of this store are logged and left out.
caf::expected<std::vector<uint32_t>> load_drops_owed(store& db);

/// Records, durably, the shards whose copy is still to drop; an empty list
/// removes the record.
caf::error note_drops_owed(store& db, const std::vector<uint32_t>& shards);

}  // namespace healthtwin::storage
