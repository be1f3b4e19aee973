#pragma once
// FHIR Subscriptions (R5 Backport, rest-hook) held by a node (docs/fhir.md
// "Subscriptions"): created, read, listed and deleted over
// /fhir/{tenant}/Subscription with the caller's token (access checked by
// composing AlertService.ListAlerts in process), kept in the node's store,
// and delivered each by a thread of its own that follows the node's alert
// events: a handshake first, then every event of its topic as a
// notification numbered in sequence, in order, each sent until the
// endpoint accepts it (2xx) and then recorded (synced) before the next.
// A restart resumes after the last accepted event, so a subscriber gets
// every notification; one whose acceptance was not yet recorded when the
// node died is sent again with the same event number (the event about to
// be sent is recorded first), which the receiver recognises
// (events-since-subscription-start). In a cluster the member holding a
// subscription follows every member's events (PeerService.FollowAlerts),
// with a cursor per member, and numbers them in one sequence.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <grpcpp/channel.h>

#include "healthtwin/v1/alert.pb.h"
#include "services/http/http_listener.hpp"

namespace prometheus {
class Registry;
}

namespace healthtwin::services {

/// The node's alert events, read by one delivery thread (the node adapts
/// its alert feed to this).
class alert_follower {
public:
  virtual ~alert_follower() = default;
  /// The next event within `wait`, or nullopt (error() non-empty: the
  /// feed failed and must be opened again).
  virtual std::optional<v1::AlertEvent> next(std::chrono::milliseconds wait) = 0;
  /// The resume token of the last event returned, or where the feed began.
  virtual uint64_t position() const = 0;
  virtual std::string error() const = 0;
};

struct follow_request {
  std::string member;  ///< whose events: "" this node, else another member's name
  std::string tenant, ward, patient_id;
  v1::Priority min_priority = v1::PRIORITY_UNSPECIFIED;
  std::optional<uint64_t> after;  ///< unset: from now on
};

/// Where the events come from: this node and, in a cluster, every other
/// member (each numbers its own events: a subscription keeps a cursor per
/// member and notifies them all in one sequence).
struct alert_sources {
  /// Opens a follower; null with `error` set when it cannot.
  std::function<std::unique_ptr<alert_follower>(const follow_request&, std::string& error)> follow;
  /// The other members' names now (unset or empty: a single node).
  std::function<std::vector<std::string>()> other_members;
};

/// Where subscriptions are kept: records by "{tenant}/{id}". Each returns
/// an error message, or nullopt when it worked.
struct subscription_storage {
  std::function<std::optional<std::string>(std::vector<std::pair<std::string, std::string>>&)> load;
  std::function<std::optional<std::string>(const std::string& key, const std::string& bytes)> put;
  std::function<std::optional<std::string>(const std::string& key)> drop;
};

struct fhir_subscription_settings {
  std::string ca_file;          ///< CAs for endpoints' certificates; empty: the system's
  size_t max_per_tenant = 32;
  size_t max_total = 256;
  std::chrono::milliseconds retry_at_most{30'000};  ///< the resend backoff's ceiling
};

class fhir_subscriptions {
public:
  /// `metrics` (optional): healthtwin_fhir_notifications_total by outcome
  /// and healthtwin_fhir_subscriptions by status.
  fhir_subscriptions(fhir_subscription_settings s, subscription_storage storage, alert_sources sources,
                     prometheus::Registry* metrics = nullptr);
  ~fhir_subscriptions();  ///< stop()

  /// Loads the kept subscriptions and starts delivering them; an error
  /// when the store cannot be read (a record that cannot be understood is
  /// logged and left alone).
  std::optional<std::string> start();
  /// Checks access through `api` (the node's gRPC server in process).
  void attach(std::shared_ptr<grpc::Channel> api);
  /// Answers /fhir/{tenant}/Subscription[/{id}[/$status]] (`parts` the
  /// path's segments from "fhir" on). Blocks: call off the listener.
  http_response answer(const http_request& req, const std::vector<std::string>& parts);
  /// Stops every delivery (a notification in flight is abandoned and sent
  /// again on the next start).
  void stop();

private:
  struct delivery;
  struct probe;

  http_response create(const http_request& req, const std::string& tenant);
  http_response read(const std::string& tenant, const std::string& id, bool status_only);
  http_response list(const std::string& tenant, const std::string& base);
  http_response remove(const std::string& tenant, const std::string& id);
  std::optional<http_response> authorize(const http_request& req, const std::string& tenant,
                                         const std::string& ward, const std::string& patient_id,
                                         const char* what);
  void run(delivery& d);
  void launch(std::shared_ptr<delivery> d);
  bool open_feeds(delivery& d, bool record);
  bool persist(delivery& d);
  void count_statuses();

  fhir_subscription_settings s_;
  subscription_storage storage_;
  alert_sources sources_;
  std::unique_ptr<probe> probe_;
  std::mutex mtx_;
  std::shared_ptr<grpc::Channel> api_;
  std::map<std::string, std::shared_ptr<delivery>> deliveries_;  // by "{tenant}/{id}"
  bool stopped_ = false;
};

}  // namespace healthtwin::services
