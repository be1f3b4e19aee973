#pragma once
// The node's FHIR R4 endpoints over its HTTP listener, with the caller's
// bearer token:
//   GET /fhir/{tenant}/Patient/{id}/$everything?start=&end=&_format=json  a
//       patient's Bundle (fhir_export)
//   /fhir/{tenant}/Subscription[/{id}[/$status]]  subscriptions
//       (fhir_subscriptions)
// Requests run on threads of their own, at most `max_running` at once
// (429 beyond), never on the listener's.

#include <condition_variable>
#include <memory>
#include <mutex>

#include <grpcpp/channel.h>

#include "services/http/http_listener.hpp"

namespace healthtwin::services {

class fhir_subscriptions;

class fhir_endpoint {
public:
  explicit fhir_endpoint(size_t max_running = 4) : max_running_(max_running) {}
  ~fhir_endpoint() { stop(); }

  /// Serves through `api` (the node's gRPC server in process) from now on.
  void attach(std::shared_ptr<grpc::Channel> api);
  /// Answers /fhir/{tenant}/Subscription... through `subs` from now on.
  void attach_subscriptions(fhir_subscriptions* subs);
  /// Answers a request whose path starts with /fhir/.
  void handle(const http_request& req, std::shared_ptr<http_responder> out);
  /// Waits for the running exports; later requests answer 503.
  void stop();

private:
  template <class Work>
  void off_listener(std::shared_ptr<http_responder> out, Work work);

  size_t max_running_;
  std::mutex mtx_;
  std::condition_variable idle_;
  std::shared_ptr<grpc::Channel> api_;
  fhir_subscriptions* subs_ = nullptr;
  size_t running_ = 0;
  bool stopping_ = false;
};

}  // namespace healthtwin::services
