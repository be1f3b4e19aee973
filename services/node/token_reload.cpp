#include "services/node/token_reload.hpp"

#include <spdlog/spdlog.h>

#include "services/grpc/token_verifier.hpp"

namespace healthtwin::node {

std::unique_ptr<periodic> reload_token_keys_every(services::token_verifier& tokens, std::chrono::seconds interval) {
  return std::make_unique<periodic>(interval, [&tokens] {
    std::string error;
    if (tokens.reload(error))
      spdlog::info("bearer-token keys reloaded: {} key(s) now", tokens.key_hashes().size());
    else if (!error.empty())
      spdlog::error("bearer-token keys: the changed key file does not load, the keys in use stay: {}", error);
  });
}

}  // namespace healthtwin::node
