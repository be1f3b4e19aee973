#pragma once
// Small records a node keeps of what it runs for its tenants, one kind per
// key prefix in the default column family (meta/"{kind}/{tenant}/{id}"):
// FHIR subscriptions ("fhir-subscription", services/http) and firmware
// rollouts ("rollout", services/grpc). Each written synced; the bytes are
// their owner's, this file knows where they live. Encrypted at rest with
// the rest of the store.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace healthtwin::storage {

class store;

/// Every record of `kind`: ("{tenant}/{id}", bytes), in key order.
caf::expected<std::vector<std::pair<std::string, std::string>>> load_meta_records(store& db,
                                                                                  std::string_view kind);

/// Writes (or replaces) a record durably.
caf::error put_meta_record(store& db, std::string_view kind, std::string_view tenant_and_id,
                           std::string_view bytes);

/// Removes a record durably.
caf::error drop_meta_record(store& db, std::string_view kind, std::string_view tenant_and_id);

/// Records that live in the shard of the resource they describe and move
/// with it in a hand-off (storage/shard_transfer): firmware rollouts, the
/// shard of "tenants/{t}/rollouts/{id}". FHIR subscriptions stay on their
/// node.
struct meta_entry {
  std::string key;  ///< "{kind}/{tenant}/{id}" in the meta column
  std::string value;
};

/// The shard of the resource a meta key names, when its kind moves with a
/// shard (`shards`: the store's count); nullopt for any other key.
std::optional<uint32_t> meta_shard(std::string_view key, uint32_t shards);

/// Every record of `shard` among the kinds that move with one.
caf::expected<std::vector<meta_entry>> meta_records_of_shard(store& db, uint32_t shard);

}  // namespace healthtwin::storage
