#include "services/node/token_reload.hpp"

#include <spdlog/spdlog.h>

#include "services/grpc/token_verifier.hpp"

namespace healthtwin::node {

token_reload::token_reload(services::token_verifier& tokens, std::chrono::seconds interval) : tokens_(tokens) {
  thread_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock{mtx_};
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
      std::string error;
      if (tokens_.reload(error))
        spdlog::info("bearer-token keys reloaded: {} key(s) now", tokens_.key_hashes().size());
      else if (!error.empty())
        spdlog::error("bearer-token keys: the changed key file does not load, the keys in use stay: {}", error);
    }
  });
}

token_reload::~token_reload() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

}  // namespace healthtwin::node
