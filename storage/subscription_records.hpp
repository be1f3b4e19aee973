#pragma once
// What a node keeps of the FHIR subscriptions it delivers (default column
// family, meta/"fhir-subscription/{tenant}/{id}"): one record each, the
// subscription and how far its delivery got, written synced. The record's
// bytes are services/http's (fhir_subscriptions); this file knows where
// they live. Encrypted at rest with the rest of the store.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace healthtwin::storage {

class store;

/// Every record: ("{tenant}/{id}", bytes), in key order.
caf::expected<std::vector<std::pair<std::string, std::string>>> load_subscription_records(store& db);

/// Writes (or replaces) a record durably.
caf::error put_subscription_record(store& db, std::string_view tenant_and_id, std::string_view bytes);

/// Removes a record durably.
caf::error drop_subscription_record(store& db, std::string_view tenant_and_id);

}  // namespace healthtwin::storage
