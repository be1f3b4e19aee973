#include "services/node/subscription_wiring.hpp"

#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "services/grpc/alert_feed.hpp"
#include "storage/errc.hpp"
#include "storage/meta_records.hpp"

namespace healthtwin::node {

namespace {

constexpr std::string_view subscription_kind = "fhir-subscription";

// This node's events.
class feed_follower final : public services::alert_follower {
public:
  explicit feed_follower(std::unique_ptr<services::alert_feed> feed) : feed_(std::move(feed)) {}
  std::optional<v1::AlertEvent> next(std::chrono::milliseconds wait) override { return feed_->next(wait); }
  uint64_t position() const override { return feed_->position(); }
  std::string error() const override { return feed_->error(); }

private:
  std::unique_ptr<services::alert_feed> feed_;
};

// Another member's events: its FollowAlerts stream, read by a thread of
// its own into a bounded queue. Ends (error() says why) when the stream
// ends or the queue overflows; the subscription then follows the member
// again from its cursor.
class member_follower final : public services::alert_follower {
public:
  // The member answers the stream's opening with its position at once; one
  // that does not within `answer_within` is given up (and asked again later).
  static std::unique_ptr<member_follower> open(std::unique_ptr<internal::PeerService::Stub> stub,
                                               const internal::AlertFollowRequest& req, std::string& error,
                                               std::chrono::milliseconds answer_within = std::chrono::seconds(10)) {
    std::unique_ptr<member_follower> f{new member_follower(std::move(stub))};
    f->reader_ = f->stub_->FollowAlerts(&f->ctx_, req);
    f->thread_ = std::thread([p = f.get()] { p->read(); });
    std::unique_lock<std::mutex> lock{f->mtx_};
    if (!f->cv_.wait_for(lock, answer_within, [&] { return f->opened_ || !f->error_.empty(); })) {
      lock.unlock();
      error = "the member did not answer within " + std::to_string(answer_within.count()) + " ms";
      return nullptr;  // the destructor cancels the call and joins the reader
    }
    if (!f->opened_) {
      error = f->error_;
      return nullptr;
    }
    return f;
  }

  ~member_follower() override {
    ctx_.TryCancel();
    if (thread_.joinable())
      thread_.join();
  }

  std::optional<v1::AlertEvent> next(std::chrono::milliseconds wait) override {
    std::unique_lock<std::mutex> lock{mtx_};
    if (!cv_.wait_for(lock, wait, [&] { return !queue_.empty() || !error_.empty(); }) || queue_.empty())
      return std::nullopt;
    auto e = std::move(queue_.front());
    queue_.pop_front();
    position_ = e.resume_token();
    return e;
  }
  uint64_t position() const override {
    std::lock_guard<std::mutex> g{mtx_};
    return position_;
  }
  std::string error() const override {
    std::lock_guard<std::mutex> g{mtx_};
    return queue_.empty() ? error_ : std::string{};  // what was read first
  }

private:
  explicit member_follower(std::unique_ptr<internal::PeerService::Stub> stub) : stub_(std::move(stub)) {}

  void read() {
    reader_->WaitForInitialMetadata();
    auto& md = ctx_.GetServerInitialMetadata();
    auto it = md.find("healthtwin-position");
    uint64_t position = 0;
    bool opened = it != md.end() &&
                  std::from_chars(it->second.data(), it->second.data() + it->second.size(), position).ec == std::errc{};
    if (opened) {
      std::lock_guard<std::mutex> g{mtx_};
      position_ = position;
      opened_ = true;
      cv_.notify_all();
    }
    v1::AlertEvent e;
    bool overflowed = false;
    while (opened && reader_->Read(&e)) {
      std::lock_guard<std::mutex> g{mtx_};
      if (queue_.size() >= 10'000) {
        overflowed = true;
        ctx_.TryCancel();
        break;
      }
      queue_.push_back(std::move(e));
      cv_.notify_all();
    }
    auto st = reader_->Finish();
    std::lock_guard<std::mutex> g{mtx_};
    error_ = overflowed ? "fell behind the member's events"
             : st.ok()  ? (opened ? "the member ended the stream" : "the member did not open the stream")
                        : st.error_message();
    if (error_.empty())
      error_ = "the stream ended";
    cv_.notify_all();
  }

  std::unique_ptr<internal::PeerService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::AlertEvent>> reader_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<v1::AlertEvent> queue_;
  uint64_t position_ = 0;
  bool opened_ = false;
  std::string error_;
  std::thread thread_;
};

std::optional<std::string> failed(const caf::error& err) {
  if (!err)
    return std::nullopt;
  return storage::describe(err);
}

}  // namespace

std::unique_ptr<services::fhir_subscriptions> make_fhir_subscriptions(
    const services::fhir_subscription_settings& settings, const services::api_context& ctx,
    const cluster::membership* members, const services::peer_settings& peer) {
  auto* db = ctx.store;
  services::subscription_storage kept;
  kept.load = [db](std::vector<std::pair<std::string, std::string>>& out) -> std::optional<std::string> {
    auto records = storage::load_meta_records(*db, subscription_kind);
    if (!records)
      return storage::describe(records.error());
    out = std::move(*records);
    return std::nullopt;
  };
  kept.put = [db](const std::string& key, const std::string& bytes) {
    return failed(storage::put_meta_record(*db, subscription_kind, key, bytes));
  };
  kept.drop = [db](const std::string& key) { return failed(storage::drop_meta_record(*db, subscription_kind, key)); };

  services::alert_sources sources;
  sources.follow = [ctx, members, peer](const services::follow_request& r,
                                        std::string& error) -> std::unique_ptr<services::alert_follower> {
    std::string patient = r.patient_id.empty() ? "" : "tenants/" + r.tenant + "/patients/" + r.patient_id;
    if (r.member.empty()) {
      services::alert_feed_query q{"tenants/" + r.tenant, r.ward, patient, r.min_priority, r.after};
      std::unique_ptr<services::alert_feed> feed;
      if (auto st = services::alert_feed::open(ctx, q, feed); !st.ok()) {
        error = st.error_message();
        return nullptr;
      }
      return std::make_unique<feed_follower>(std::move(feed));
    }
    if (!members) {
      error = "not in a cluster";
      return nullptr;
    }
    auto map = members->map();
    std::string address;
    for (auto& m : map->members())
      if (m.name == r.member)
        address = m.address;
    if (address.empty()) {
      error = "no such member";
      return nullptr;
    }
    auto stub = services::make_peer_stub(peer, address, error);
    if (!stub)
      return nullptr;
    internal::AlertFollowRequest q;
    q.set_tenant(r.tenant);
    q.set_ward(r.ward);
    q.set_patient(patient);
    q.set_min_priority(r.min_priority);
    if (r.after)
      q.set_after(*r.after);
    return member_follower::open(std::move(stub), q, error);
  };
  if (members)
    sources.other_members = [members] {
      std::vector<std::string> others;
      auto map = members->map();
      auto& self = members->self_member().name;
      for (uint32_t i = 0; i < map->members().size(); ++i)
        if (map->listed(i) && map->members()[i].name != self)
          others.push_back(map->members()[i].name);
      return others;
    };
  return std::make_unique<services::fhir_subscriptions>(settings, std::move(kept), std::move(sources), ctx.metrics);
}

}  // namespace healthtwin::node
