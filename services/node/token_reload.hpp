#pragma once
// Bearer-token keys rotate without a restart (docs/operations.md, "Rotating
// token keys"): the key source is read again every interval and the keys
// swapped in when the file changed and loads; a file that does not load is
// logged once and the keys in use stay.

#include <chrono>
#include <memory>

#include "services/node/periodic.hpp"

namespace healthtwin::services {
class token_verifier;
}

namespace healthtwin::node {

/// Checks `tokens` (which outlives the result) every `interval`.
std::unique_ptr<periodic> reload_token_keys_every(services::token_verifier& tokens, std::chrono::seconds interval);

}  // namespace healthtwin::node
