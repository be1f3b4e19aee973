// AlertService.StreamAlerts: a tenant's (or a patient's) alert events as
// they happen, resumable after a token. In a cluster a patient's stream is
// relayed from its owner, and a tenant's merges every member's.

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "actors/alerts/alert_hub.hpp"
#include "services/grpc/alert_feed.hpp"
#include "services/grpc/alert_stream.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/alert_table.hpp"

namespace healthtwin::services {

namespace {

using grpc::Status;

// A merged StreamAlerts' feed from every other member: one thread per
// member keeps a forwarded StreamAlerts open there (reconnecting every
// second while it is down, resuming after the last event it had from it,
// so a member's restart loses none of its events), and queues its events
// for the caller's stream, which alone writes.
class member_streams {
public:
  member_streams(service_env& env, const grpc::ServerContextBase* call,
                 const v1::StreamAlertsRequest& req) {
    auto& fwd = *env.ctx.forwarding;
    for (auto m : fwd.others())
      threads_.emplace_back([this, &env, &fwd, call, req, m] { follow(env, fwd, call, req, m); });
  }

  ~member_streams() {
    {
      std::lock_guard<std::mutex> g{mtx_};
      stopping_ = true;
      for (auto* c : open_)
        c->TryCancel();
    }
    wake_.notify_all();
    for (auto& t : threads_)
      t.join();
  }

  std::vector<v1::AlertEvent> take() {
    std::lock_guard<std::mutex> g{mtx_};
    std::vector<v1::AlertEvent> out;
    out.swap(events_);
    return out;
  }

private:
  void follow(service_env& env, owner_forwarding& fwd, const grpc::ServerContextBase* call,
              v1::StreamAlertsRequest req, uint32_t m) {
    for (;;) {
      auto stubs = fwd.stubs(m);
      if (stubs) {
        grpc::ClientContext ctx;
        env.prepare_forwarded(call, ctx, true);
        {
          std::lock_guard<std::mutex> g{mtx_};
          if (stopping_)
            return;
          open_.push_back(&ctx);
        }
        auto reader = stubs->alerts->StreamAlerts(&ctx, req);
        v1::AlertEvent e;
        while (reader->Read(&e)) {
          req.set_resume_after(e.resume_token());
          std::lock_guard<std::mutex> g{mtx_};
          if (events_.size() < 10'000)  // the caller's stream fell behind: drop
            events_.push_back(e);
        }
        auto st = reader->Finish();
        if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
          req.clear_resume_after();  // it lost events it numbered (a wiped member)
        std::lock_guard<std::mutex> g{mtx_};
        open_.erase(std::find(open_.begin(), open_.end(), &ctx));
      }
      std::unique_lock<std::mutex> lock{mtx_};
      if (wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; }))
        return;
    }
  }

  std::mutex mtx_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<grpc::ClientContext*> open_;
  std::vector<v1::AlertEvent> events_;
  std::vector<std::thread> threads_;
};


// Waits up to `wait` for the feed's next event and writes it: OK to go on
// (sent, or none came), CANCELLED when the caller went away, INTERNAL when
// the store could not be read.
Status pass_next(alert_feed& feed, grpc::ServerWriter<v1::AlertEvent>* writer, std::chrono::milliseconds wait) {
  auto e = feed.next(wait);
  if (!e)
    return feed.error().empty() ? Status::OK : Status(grpc::StatusCode::INTERNAL, feed.error());
  return writer->Write(*e) ? Status::OK : Status(grpc::StatusCode::CANCELLED, "the caller went away");
}

}  // namespace

grpc::Status stream_alerts(service_env& env, grpc::ServerContext* call,
                           const v1::StreamAlertsRequest& req,
                           grpc::ServerWriter<v1::AlertEvent>* writer) {
  return env.serve(call, "AlertService/StreamAlerts", [&](rpc_call& rc) -> Status {
    actors::alert_filter filter;
    if (auto st = parse_alert_filter(req.parent(), req.ward(), req.min_priority(), req.patient(),
                                     filter);
        !st.ok())
      return st;
    if (auto st = rc.allow({filter.tenant, {}}); !st.ok())
      return st;
    if (!filter.patient.empty() && !env.owned_elsewhere(filter.patient))
      if (auto st = env.stream_elsewhere(call, filter.patient))  // homed in another region
        return *st;
    // In a cluster: a patient's alerts come from its owner; a tenant's are
    // merged from every member (docs/cluster.md). A forwarded call is
    // answered from this member alone.
    std::unique_ptr<member_streams> others;
    if (env.ctx.forwarding && !call->client_metadata().count(forwarded_by_header)) {
      if (!filter.patient.empty() && env.owned_elsewhere(filter.patient)) {
        if (auto st = env.audit_stream_opened(call, rc); !st.ok())
          return st;
        // Resume tokens are the owner's; ends when the caller or the owner ends it.
        return *env.relay(call, filter.patient, writer, [&](owner_stubs& s, grpc::ClientContext& c) {
          return s.alerts->StreamAlerts(&c, req);
        });
      }
      if (filter.patient.empty()) {
        if (req.has_resume_after())
          return invalid_argument("resume_after",
                                  "a cluster's members number their events each on their own: "
                                  "resume a patient's stream, or reconnect without it and catch "
                                  "up with ListAlerts");
        others = std::make_unique<member_streams>(env, call, req);
      }
    }
    if (auto st = env.audit_stream_opened(call, rc); !st.ok())
      return st;
    std::unique_ptr<alert_feed> feed;
    alert_feed_query q{req.parent(), req.ward(), req.patient(), req.min_priority(), std::nullopt};
    if (req.has_resume_after())
      q.after = req.resume_after();
    if (auto st = alert_feed::open(env.ctx, q, feed); !st.ok())
      return st;
    // Subscribed: tell the caller the stream is open before any event
    // (the JSON gateway answers its HTTP client on this mark, not at the
    // first alert).
    call->AddInitialMetadata("healthtwin-stream", "open");
    writer->SendInitialMetadata();
    // What the subscriber missed comes from the store, then live events;
    // one that falls behind is caught up from the store (alert_feed).
    while (!call->IsCancelled() && !env.stopping) {
      if (others) {  // other members' events first, as they came
        bool ok = true;
        for (auto& x : others->take())
          ok = ok && writer->Write(x);
        if (!ok)
          break;
      }
      auto st = pass_next(*feed, writer, std::chrono::milliseconds(others ? 50 : 200));
      if (st.error_code() == grpc::StatusCode::CANCELLED)
        break;
      if (!st.ok())
        return st;
    }
    auto sent = feed->position();
    feed.reset();
    if (env.stopping)
      return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::shutting_down,
                         "node is shutting down; reconnect with resume_after=" + std::to_string(sent),
                         std::chrono::milliseconds(1000));
    return Status::OK;
  });
}

grpc::Status follow_alerts(service_env& env, grpc::ServerContext& call, const internal::AlertFollowRequest& req,
                           grpc::ServerWriter<v1::AlertEvent>* writer) {
  alert_feed_query q{"tenants/" + req.tenant(), req.ward(), req.patient(), req.min_priority(), std::nullopt};
  if (req.has_after())
    q.after = req.after();
  std::unique_ptr<alert_feed> feed;
  if (auto st = alert_feed::open(env.ctx, q, feed); !st.ok())
    return st;
  call.AddInitialMetadata("healthtwin-stream", "open");
  call.AddInitialMetadata("healthtwin-position", std::to_string(feed->position()));
  writer->SendInitialMetadata();
  while (!call.IsCancelled() && !env.stopping) {
    auto st = pass_next(*feed, writer, std::chrono::milliseconds(200));
    if (st.error_code() == grpc::StatusCode::CANCELLED)
      break;
    if (!st.ok())
      return st;
  }
  if (env.stopping)
    return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::shutting_down, "node is shutting down",
                       std::chrono::milliseconds(1000));
  return Status::OK;
}

}  // namespace healthtwin::services
