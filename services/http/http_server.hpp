#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "services/http/http_listener.hpp"
#include "services/http/json_gateway.hpp"

namespace prometheus {
class Registry;
}
namespace grpc {
class Channel;
}

namespace healthtwin::services {

class fhir_subscriptions;

/// Settings of the node's HTTP listener. None can change at run time.
struct http_settings {
  /// host:port to listen on; port 0 picks a free port. Default 127.0.0.1:8080.
  std::string listen = "127.0.0.1:8080";
  /// Worker threads. Default 2.
  int threads = 2;
  /// HTTPS (TLS 1.2 or 1.3) with this PEM certificate chain and key;
  /// empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// How often those files are checked for a rotated certificate (new
  /// connections get it); 0: read once at start.
  std::chrono::seconds tls_reload{0};
  /// Connection limits and deadlines (slow or half-open clients are
  /// disconnected; /healthz keeps answering under them).
  http_limits limits;
  /// The API as JSON (/api/v1/) and the ward dashboard (/).
  json_gateway_settings gateway;
};

/// The node's HTTP(S) endpoints for people, scripts and probes:
///   GET /         the ward dashboard (static page; it calls the API below
///                 with the user's token)
///   POST /api/v1/{Service}/{Method}  the public API as JSON (json_gateway),
///                 once attach_api() was called; 503 before
///   GET /metrics  Prometheus text format (no per-patient labels)
///   GET /healthz  200 while the process serves; 503 naming the problem when
///                 it cannot recover without a restart (a failed disk write)
///   GET /readyz   200 once recovery finished, 503 before, while stopping and
///                 while unhealthy
/// Thread-safe; stops when destroyed.
class http_server {
public:
  /// Starts listening; an error names the address that could not be bound.
  /// `before_scrape` (optional) refreshes gauges that are read on demand;
  /// it runs on an HTTP thread. `health_problem` (optional) returns what
  /// makes the node unhealthy, empty when nothing does.
  static caf::expected<std::unique_ptr<http_server>> start(
      const http_settings& settings, prometheus::Registry& metrics, const std::atomic<bool>& ready,
      std::function<void()> before_scrape = {}, std::function<std::string()> health_problem = {});
  ~http_server();

  /// The bound port (useful with port 0).
  uint16_t port() const noexcept;

  /// Serves /api/v1/ through `channel`, the node's API in process.
  void attach_api(std::shared_ptr<grpc::Channel> channel);
  /// Ends every call in flight through /api/v1/ and answers 503 from now
  /// on: before the API's server stops.
  void stop_api();
  /// Serves /fhir/{tenant}/Subscription through `subs` (until stop_api()).
  void attach_subscriptions(fhir_subscriptions* subs);

  struct impl;

private:
  explicit http_server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::services
