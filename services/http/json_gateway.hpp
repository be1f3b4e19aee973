#pragma once

#include <chrono>
#include <memory>

#include "services/http/http_listener.hpp"

namespace grpc {
class Channel;
}

namespace healthtwin::services {

/// Limits of the JSON gateway. None can change at run time.
struct json_gateway_settings {
  /// Deadline of a unary call made through the gateway. Default 30 s.
  std::chrono::milliseconds call_timeout{30'000};
  /// Calls in flight (event streams included); more answer 503. Default 512.
  size_t max_calls = 512;
  /// Event streams open at once; more answer 503. Default 128.
  size_t max_streams = 128;
  /// An event stream without events sends a comment this often, so that a
  /// client gone away is noticed. Default 15 s.
  std::chrono::milliseconds keepalive{15'000};
};

/// The public gRPC API (healthtwin.v1) as JSON over HTTP, for browsers and
/// scripts: `POST /api/v1/{Service}/{Method}` with the request message as
/// JSON (proto3 JSON mapping) and `Authorization: Bearer <token>`.
///  - A unary method answers its response message as JSON; a gRPC error
///    answers the HTTP status of its code with
///    {"code", "status", "message", "details"} (details as google.rpc types,
///    field violations naming the field).
///  - A server-streaming method (StreamAlerts, Watch*) answers
///    `text/event-stream`: one `data:` event per message, comments as
///    keep-alives, and an `event: error` with the status if the call ends
///    with one. The answer starts at the first message, or before it when
///    the method sends the initial metadata `healthtwin-stream: open`;
///    a call refused before either answers its status as a unary one does.
/// Calls go through the node's own gRPC server in process, so the same
/// token checks, roles, tenant scoping, rate limits, audit and cluster
/// routing apply; only the Authorization header is passed on. Thread-safe.
class json_gateway {
public:
  explicit json_gateway(json_gateway_settings settings);
  ~json_gateway();
  json_gateway(const json_gateway&) = delete;
  json_gateway& operator=(const json_gateway&) = delete;

  /// Serves calls through `channel` from now on (503 before).
  void attach(std::shared_ptr<grpc::Channel> channel);

  /// Answers a request whose path starts with /api/v1/.
  void handle(http_request req, std::shared_ptr<http_responder> out);

  /// Cancels every call in flight and waits until each dropped its
  /// responder; later requests answer 503.
  void stop();

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

}  // namespace healthtwin::services
