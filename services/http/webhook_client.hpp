#pragma once
// One HTTPS POST to a subscriber's endpoint (libcurl): TLS 1.2 or newer
// with the peer's certificate and host name verified (against the system's
// CAs, or a CA file), no redirects, no other protocol, a deadline, and an
// abort flag checked while it runs. The answer's body is read and dropped
// (at most 64 KiB).

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

namespace healthtwin::services {

struct webhook_post {
  std::string url;
  std::string content_type;
  std::string body;
  std::vector<std::string> headers;  ///< "Name: value"
  std::chrono::seconds timeout{10};
  std::string ca_file;  ///< empty: the system's CAs
};

struct webhook_result {
  long http_status = 0;  ///< 0: no answer (error says why)
  std::string error;
  bool accepted() const noexcept { return http_status >= 200 && http_status < 300; }
};

/// Posts, giving up early when `abort` becomes true. Thread-safe (one
/// handle per call); call webhook_global_init() once before any thread does.
webhook_result post_webhook(const webhook_post& p, const std::atomic<bool>& abort);

void webhook_global_init();

}  // namespace healthtwin::services
