#pragma once
// Bearer-token keys rotate without a restart (docs/operations.md, "Rotating
// token keys"): a thread reads the key source again every interval and
// swaps the keys in when the file changed and loads; a file that does not
// load is logged once and the keys in use stay.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace healthtwin::services {
class token_verifier;
}

namespace healthtwin::node {

class token_reload {
public:
  /// Starts checking `tokens` (which outlives this) every `interval`.
  token_reload(services::token_verifier& tokens, std::chrono::seconds interval);
  ~token_reload();
  token_reload(const token_reload&) = delete;
  token_reload& operator=(const token_reload&) = delete;

private:
  services::token_verifier& tokens_;
  std::mutex mtx_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace healthtwin::node
