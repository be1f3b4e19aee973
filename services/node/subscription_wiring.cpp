#include "services/node/subscription_wiring.hpp"

#include "services/grpc/alert_feed.hpp"
#include "storage/errc.hpp"
#include "storage/subscription_records.hpp"

namespace healthtwin::node {

namespace {

class feed_follower final : public services::alert_follower {
public:
  explicit feed_follower(std::unique_ptr<services::alert_feed> feed) : feed_(std::move(feed)) {}
  std::optional<v1::AlertEvent> next(std::chrono::milliseconds wait) override { return feed_->next(wait); }
  uint64_t position() const override { return feed_->position(); }
  std::string error() const override { return feed_->error(); }

private:
  std::unique_ptr<services::alert_feed> feed_;
};

std::optional<std::string> failed(const caf::error& err) {
  if (!err)
    return std::nullopt;
  return storage::describe(err);
}

}  // namespace

std::unique_ptr<services::fhir_subscriptions> make_fhir_subscriptions(
    const services::fhir_subscription_settings& settings, const services::api_context& ctx) {
  auto* db = ctx.store;
  services::subscription_storage kept;
  kept.load = [db](std::vector<std::pair<std::string, std::string>>& out) -> std::optional<std::string> {
    auto records = storage::load_subscription_records(*db);
    if (!records)
      return storage::describe(records.error());
    out = std::move(*records);
    return std::nullopt;
  };
  kept.put = [db](const std::string& key, const std::string& bytes) {
    return failed(storage::put_subscription_record(*db, key, bytes));
  };
  kept.drop = [db](const std::string& key) { return failed(storage::drop_subscription_record(*db, key)); };
  auto follow = [ctx](const services::follow_request& r, std::string& error)
      -> std::unique_ptr<services::alert_follower> {
    services::alert_feed_query q;
    q.parent = "tenants/" + r.tenant;
    q.ward = r.ward;
    if (!r.patient_id.empty())
      q.patient = q.parent + "/patients/" + r.patient_id;
    q.min_priority = r.min_priority;
    q.after = r.after;
    std::unique_ptr<services::alert_feed> feed;
    if (auto st = services::alert_feed::open(ctx, q, feed); !st.ok()) {
      error = st.error_message();
      return nullptr;
    }
    return std::make_unique<feed_follower>(std::move(feed));
  };
  return std::make_unique<services::fhir_subscriptions>(settings, std::move(kept), std::move(follow));
}

}  // namespace healthtwin::node
