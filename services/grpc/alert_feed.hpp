#pragma once
// This node's alert events as a pull feed, for the StreamAlerts service and
// for followers in the same process (FHIR subscriptions): from a resume
// token on, first the events the store kept, then live ones from the hub;
// in order, each once. A reader that falls behind the hub's bounded queue
// is caught up from the store again, without a gap. One thread reads a
// feed.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include <grpcpp/support/status.h>

#include "healthtwin/v1/alert.pb.h"
#include "services/grpc/api_services.hpp"

namespace healthtwin::actors {
class alert_sink;
struct alert_filter;
}  // namespace healthtwin::actors

namespace healthtwin::services {

struct alert_feed_query {
  std::string parent;   ///< tenants/{tenant}; required
  std::string ward;     ///< empty: every ward
  std::string patient;  ///< empty: every patient (tenants/{t}/patients/{p} otherwise)
  v1::Priority min_priority = v1::PRIORITY_UNSPECIFIED;
  std::optional<uint64_t> after;  ///< resume token; unset: events from now on
};

class alert_feed {
public:
  /// Subscribes to the node's alert hub. INVALID_ARGUMENT naming the field
  /// for a bad query or an `after` beyond this node's newest event;
  /// UNAVAILABLE when the hub does not answer.
  static grpc::Status open(const api_context& ctx, const alert_feed_query& q, std::unique_ptr<alert_feed>& out);
  ~alert_feed();  ///< unsubscribes
  alert_feed(const alert_feed&) = delete;
  alert_feed& operator=(const alert_feed&) = delete;

  /// The next event, waiting up to `wait` for one; nullopt when none came
  /// (or reading the store failed: error() then says why).
  std::optional<v1::AlertEvent> next(std::chrono::milliseconds wait);
  /// The resume token of the last event returned, or where the feed began.
  uint64_t position() const noexcept { return position_; }
  /// Why the last next() failed to read the store (empty: it did not).
  const std::string& error() const noexcept { return error_; }

private:
  alert_feed(const api_context& ctx, std::unique_ptr<actors::alert_filter> f);
  grpc::Status subscribe();
  void unsubscribe();
  void read_stored();

  api_context ctx_;  // a copy: the feed may outlive the caller's
  std::unique_ptr<actors::alert_filter> filter_;
  std::shared_ptr<actors::alert_sink> sink_;
  uint64_t last_ = 0;      // the hub's newest event when subscribed: the store holds up to it
  uint64_t scanned_ = 0;   // the store was read up to here
  uint64_t position_ = 0;  // the last event returned
  bool replaying_ = false;
  std::deque<v1::AlertEvent> stored_;
  std::string error_;
};

}  // namespace healthtwin::services
