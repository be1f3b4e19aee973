#include "services/grpc/alert_feed.hpp"

#include <caf/all.hpp>

#include "actors/alerts/alert_hub.hpp"
#include "services/grpc/alert_stream.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/api_services.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/alert_table.hpp"
#include "storage/errc.hpp"

namespace healthtwin::services {

namespace {

constexpr auto hub_timeout = std::chrono::seconds(5);
constexpr size_t read_batch = 256;  // stored events read at once

}  // namespace

alert_feed::alert_feed(const api_context& ctx, std::unique_ptr<actors::alert_filter> f)
    : ctx_(ctx), filter_(std::move(f)) {}

alert_feed::~alert_feed() {
  unsubscribe();
}

grpc::Status alert_feed::open(const api_context& ctx, const alert_feed_query& q, std::unique_ptr<alert_feed>& out) {
  auto filter = std::make_unique<actors::alert_filter>();
  if (auto st = parse_alert_filter(q.parent, q.ward, q.min_priority, q.patient, *filter); !st.ok())
    return st;
  std::unique_ptr<alert_feed> feed{new alert_feed(ctx, std::move(filter))};
  if (auto st = feed->subscribe(); !st.ok())
    return st;
  if (q.after && *q.after > feed->last_)
    return invalid_argument("resume_after", "is beyond the newest event of this node");
  feed->position_ = feed->scanned_ = q.after.value_or(feed->last_);
  feed->replaying_ = feed->scanned_ < feed->last_;
  out = std::move(feed);
  return grpc::Status::OK;
}

grpc::Status alert_feed::subscribe() {
  auto sink = std::make_shared<actors::alert_sink>(*filter_);
  caf::scoped_actor self{*ctx_.sys};
  grpc::Status st = grpc::Status::OK;
  self->request(ctx_.alert_hub, hub_timeout, actors::alert_sub_atom::value, sink)
      .receive([&](uint64_t last) { last_ = last; },
               [&](caf::error& e) { st = to_status(e); });
  if (st.ok())
    sink_ = std::move(sink);
  return st;
}

void alert_feed::unsubscribe() {
  if (!sink_)
    return;
  sink_->close();
  caf::anon_send(ctx_.alert_hub, actors::alert_unsub_atom::value, sink_);
  sink_.reset();
}

// Reads up to a batch of stored events after scanned_ (none beyond last_:
// later ones come from the hub).
void alert_feed::read_stored() {
  storage::alert_table table{*ctx_.store};
  size_t taken = 0;
  bool reached_last = true;
  auto err = table.scan_events(scanned_, [&](uint64_t seq, std::string_view bytes) {
    if (seq > last_)
      return false;
    if (taken == read_batch) {
      reached_last = false;
      return false;
    }
    scanned_ = seq;
    actors::alert_event e;
    if (actors::parse(bytes, e) && filter_->matches(e.alert)) {
      to_api(e, &stored_.emplace_back());
      ++taken;
    }
    return true;
  });
  if (err) {
    error_ = "reading the stored alert events: " + storage::describe(err);
    return;
  }
  error_.clear();
  if (reached_last)
    replaying_ = false;
}

std::optional<v1::AlertEvent> alert_feed::next(std::chrono::milliseconds wait) {
  if (stored_.empty() && replaying_)
    read_stored();
  if (!stored_.empty()) {
    auto e = std::move(stored_.front());
    stored_.pop_front();
    position_ = e.resume_token();
    return e;
  }
  if (replaying_)
    return std::nullopt;  // the store failed: error() says why; the caller retries
  if (!sink_) {  // lost the hub after falling behind: subscribe again
    if (!subscribe().ok())
      return std::nullopt;
    scanned_ = position_;
    replaying_ = scanned_ < last_;
    return next(std::chrono::milliseconds(0));
  }
  auto e = sink_->pop(wait);
  if (!e) {
    if (sink_->overflowed()) {  // fell behind: the store has what the hub dropped
      unsubscribe();
      return next(std::chrono::milliseconds(0));
    }
    return std::nullopt;
  }
  position_ = e->sequence;
  v1::AlertEvent out;
  to_api(*e, &out);
  return out;
}

}  // namespace healthtwin::services
