#include "services/http/fhir_subscriptions.hpp"

#include <condition_variable>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "services/http/fhir_export.hpp"
#include "services/http/fhir_subscription.hpp"
#include "services/http/webhook_client.hpp"
#include "services/logging/json_log.hpp"

namespace healthtwin::services {

namespace {

using json = nlohmann::json;

// Whether the bearer token in `authorization` carries `role`: read from its
// claims once the API has verified the token (authorize() first).
bool token_has_role(std::string_view authorization, std::string_view role) {
  constexpr std::string_view scheme = "Bearer ";
  if (!authorization.starts_with(scheme))
    return false;
  auto token = authorization.substr(scheme.size());
  auto a = token.find('.'), b = token.find('.', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos || b - a - 1 > 16384)
    return false;
  std::string payload{token.substr(a + 1, b - a - 1)};
  for (auto& c : payload)
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (payload.size() % 4)
    payload += '=';
  std::string decoded(payload.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                          reinterpret_cast<const unsigned char*>(payload.data()), static_cast<int>(payload.size()));
  if (n < 0)
    return false;
  auto claims = json::parse(decoded.substr(0, static_cast<size_t>(n)).c_str(), nullptr, false);
  if (!claims.is_object() || !claims.contains("roles") || !claims["roles"].is_array())
    return false;
  for (auto& r : claims["roles"])
    if (r.is_string() && r.get<std::string>() == role)
      return true;
  return false;
}

std::string new_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

using feed_map = std::map<std::string, std::unique_ptr<alert_follower>>;

struct fhir_subscriptions::delivery {
  subscription_spec spec;
  feed_map feeds;  // the delivery thread's: each member's events ("" = this node)
  std::mutex mtx;  // guards progress (read by GET while the thread delivers)
  subscription_progress progress;
  std::atomic<bool> stopping{false};
  std::condition_variable wake;
  std::thread thread;

  std::string key() const { return spec.tenant + "/" + spec.id; }
  subscription_progress now() {
    std::lock_guard<std::mutex> g{mtx};
    return progress;
  }
  // Waits `d` unless stopped meanwhile.
  void pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock{mtx};
    wake.wait_for(lock, d, [&] { return stopping.load(); });
  }
};

// Notifications sent by outcome, and subscriptions by status (no labels
// naming a tenant, subscription or endpoint).
struct fhir_subscriptions::probe {
  explicit probe(prometheus::Registry& r)
      : sent(prometheus::BuildCounter()
                 .Name("healthtwin_fhir_notifications_total")
                 .Help("FHIR subscription notifications sent, by outcome: accepted (2xx), refused (another "
                       "answer), unreachable (no answer); refused and unreachable ones are sent again")
                 .Register(r)),
        held(prometheus::BuildGauge()
                 .Name("healthtwin_fhir_subscriptions")
                 .Help("FHIR subscriptions this node delivers, by status (error: its endpoint does not accept "
                       "the notification being sent)")
                 .Register(r)),
        accepted(sent.Add({{"outcome", "accepted"}})),
        refused(sent.Add({{"outcome", "refused"}})),
        unreachable(sent.Add({{"outcome", "unreachable"}})),
        requested(held.Add({{"status", "requested"}})),
        active(held.Add({{"status", "active"}})),
        error(held.Add({{"status", "error"}})) {}

  prometheus::Family<prometheus::Counter>& sent;
  prometheus::Family<prometheus::Gauge>& held;
  prometheus::Counter &accepted, &refused, &unreachable;
  prometheus::Gauge &requested, &active, &error;
};

fhir_subscriptions::fhir_subscriptions(fhir_subscription_settings s, subscription_storage storage,
                                       alert_sources sources, prometheus::Registry* metrics)
    : s_(std::move(s)), storage_(std::move(storage)), sources_(std::move(sources)),
      probe_(metrics ? std::make_unique<probe>(*metrics) : nullptr) {
  webhook_global_init();
}

void fhir_subscriptions::count_statuses() {
  if (!probe_)
    return;
  std::vector<std::shared_ptr<delivery>> all;
  {
    std::lock_guard<std::mutex> g{mtx_};
    for (auto& [key, d] : deliveries_)
      all.push_back(d);
  }
  double requested = 0, active = 0, error = 0;
  for (auto& d : all) {
    auto status = d->now().status;
    (status == "requested" ? requested : status == "error" ? error : active) += 1;
  }
  probe_->requested.Set(requested);
  probe_->active.Set(active);
  probe_->error.Set(error);
}

fhir_subscriptions::~fhir_subscriptions() {
  stop();
}

std::optional<std::string> fhir_subscriptions::start() {
  std::vector<std::pair<std::string, std::string>> records;
  if (auto err = storage_.load(records))
    return "reading the FHIR subscriptions: " + *err;
  for (auto& [key, bytes] : records) {
    auto d = std::make_shared<delivery>();
    std::string why;
    if (!parse_subscription_record(bytes, d->spec, d->progress, why) || key != d->key()) {
      spdlog::error("FHIR subscription record {} is not understood ({}); left alone", models::bounded(key, 80), why);
      continue;
    }
    launch(std::move(d));
  }
  if (!records.empty())
    spdlog::info("FHIR subscriptions: {} resumed", deliveries_.size());
  count_statuses();
  return std::nullopt;
}

void fhir_subscriptions::attach(std::shared_ptr<grpc::Channel> api) {
  std::lock_guard<std::mutex> g{mtx_};
  api_ = std::move(api);
}

void fhir_subscriptions::stop() {
  std::map<std::string, std::shared_ptr<delivery>> all;
  {
    std::lock_guard<std::mutex> g{mtx_};
    stopped_ = true;
    all.swap(deliveries_);
    api_.reset();
  }
  for (auto& [key, d] : all) {
    {
      std::lock_guard<std::mutex> g{d->mtx};
      d->stopping = true;
    }
    d->wake.notify_all();
  }
  for (auto& [key, d] : all)
    if (d->thread.joinable())
      d->thread.join();
}

void fhir_subscriptions::launch(std::shared_ptr<delivery> d) {
  std::lock_guard<std::mutex> g{mtx_};
  if (stopped_)
    return;  // it resumes from its record at the next start
  deliveries_[d->key()] = d;
  d->thread = std::thread([this, d] {
    run(*d);
    d->feeds.clear();
  });
}

// Opens the feeds of members that have none (or whose feed failed): from
// the member's cursor, or — a member never followed — from now on, which
// becomes its cursor (recorded at once when `record`). False when a record
// failed.
bool fhir_subscriptions::open_feeds(delivery& d, bool record) {
  std::vector<std::string> members{""};
  if (sources_.other_members)
    for (auto& m : sources_.other_members())
      members.push_back(m);
  bool opened_new = false;
  for (auto& m : members) {
    if (auto f = d.feeds.find(m); f != d.feeds.end()) {
      if (f->second->error().empty())
        continue;
      spdlog::warn("FHIR subscription {}: the alert events of member '{}' stopped ({}); following them again",
                   d.spec.id, models::bounded(m, 64), models::bounded(f->second->error(), 200));
      d.feeds.erase(f);
    }
    follow_request q{m, d.spec.tenant, d.spec.ward, d.spec.patient_id, d.spec.min_priority, std::nullopt};
    auto p = d.now();
    if (auto c = p.cursors.find(m); c != p.cursors.end())
      q.after = c->second;
    std::string error;
    auto feed = sources_.follow(q, error);
    if (!feed)
      continue;  // tried again within a second
    if (!q.after) {
      std::lock_guard<std::mutex> g{d.mtx};
      d.progress.cursors[m] = feed->position();
      opened_new = true;
    }
    d.feeds[m] = std::move(feed);
  }
  return !record || !opened_new || persist(d);
}

bool fhir_subscriptions::persist(delivery& d) {
  auto bytes = subscription_record(d.spec, d.now());
  for (auto wait = std::chrono::milliseconds(100); !d.stopping; wait = std::min(wait * 2, s_.retry_at_most)) {
    auto err = storage_.put(d.key(), bytes);
    if (!err)
      return true;
    spdlog::error("FHIR subscription {}: recording its progress failed: {}", d.spec.id, *err);
    d.pause(wait);
  }
  return false;
}

void fhir_subscriptions::run(delivery& d) {
  auto backoff = std::chrono::milliseconds(1000);
  auto last_sent = std::chrono::steady_clock::now();
  // Sends `body` until the endpoint accepts it (true), or once when `once`;
  // false when it did not (or the subscription stops).
  auto send = [&](const std::string& body, bool once) {
    for (;;) {
      if (d.stopping)
        return false;
      webhook_post post{d.spec.endpoint, "application/fhir+json", body, d.spec.headers,
                        std::chrono::seconds(d.spec.timeout_s), s_.ca_file};
      auto r = post_webhook(post, d.stopping);
      if (probe_)
        (r.accepted() ? probe_->accepted : r.http_status ? probe_->refused : probe_->unreachable).Increment();
      if (r.accepted()) {
        last_sent = std::chrono::steady_clock::now();
        backoff = std::chrono::milliseconds(1000);
        bool recovered = false;
        {
          std::lock_guard<std::mutex> g{d.mtx};
          if (d.progress.status == "error") {
            d.progress.status = "active";
            d.progress.error.clear();
            recovered = true;
          }
        }
        if (recovered) {
          spdlog::info("FHIR subscription {}: the endpoint accepts notifications again", d.spec.id);
          count_statuses();
        }
        return true;
      }
      if (d.stopping)
        return false;
      bool first = false;
      {
        std::lock_guard<std::mutex> g{d.mtx};
        first = d.progress.error.empty();
        if (d.progress.status != "requested")
          d.progress.status = "error";
        d.progress.error = models::bounded(r.error, 200);
      }
      if (first) {
        count_statuses();
        spdlog::warn("FHIR subscription {}: the endpoint did not accept a notification ({}); sending it again",
                     d.spec.id, models::bounded(r.error, 200));
        persist(d);
      }
      if (once)
        return false;
      d.pause(backoff);
      backoff = std::min(backoff * 2, s_.retry_at_most);
    }
  };
  if (d.now().status == "requested") {
    if (!send(handshake_bundle(d.spec, models::wall_clock_ms()), false))
      return;
    {
      std::lock_guard<std::mutex> g{d.mtx};
      d.progress.status = "active";
      d.progress.error.clear();
    }
    count_statuses();
    if (!persist(d))
      return;
  }
  auto reopen_at = std::chrono::steady_clock::time_point{};
  while (!d.stopping) {
    if (std::chrono::steady_clock::now() >= reopen_at) {
      reopen_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      if (!open_feeds(d, true))
        return;
    }
    // One event from some member (the pending one's member alone while one
    // is pending: it is notified before anything else).
    auto p = d.now();
    std::optional<v1::AlertEvent> e;
    std::string member;
    auto wait = std::chrono::milliseconds(d.feeds.size() > 1 ? 20 : 300);
    bool polled = false;
    for (auto& [m, feed] : d.feeds) {
      if (p.pending && m != p.pending_member)
        continue;
      polled = true;
      if ((e = feed->next(wait))) {
        member = m;
        break;
      }
    }
    if (!e) {
      if (!polled)  // no feed yet (or not the pending event's member's)
        d.pause(std::chrono::milliseconds(200));
      if (d.spec.heartbeat_s > 0 &&
          std::chrono::steady_clock::now() - last_sent >= std::chrono::seconds(d.spec.heartbeat_s)) {
        send(heartbeat_bundle(d.spec, p, models::wall_clock_ms()), true);
        last_sent = std::chrono::steady_clock::now();
      }
      continue;
    }
    auto token = e->resume_token();
    if (!notifies(d.spec, *e) || (p.pending && token < p.pending_token)) {
      std::lock_guard<std::mutex> g{d.mtx};  // passed over: recorded with the next write
      d.progress.cursors[member] = token;
      continue;
    }
    if (p.pending && token > p.pending_token)  // the pending event is gone (its patient erased)
      spdlog::warn("FHIR subscription {}: the pending event is no longer stored; notifying the next", d.spec.id);
    if (!p.pending || token != p.pending_token) {  // recorded before it is first sent
      {
        std::lock_guard<std::mutex> g{d.mtx};
        d.progress.pending = true;
        d.progress.pending_member = member;
        d.progress.pending_token = token;
      }
      if (!persist(d))
        return;
    }
    auto number = p.events + 1;
    if (!send(event_bundle(d.spec, d.now(), number, *e, models::wall_clock_ms()), false))
      return;  // stopping: the pending event is sent again, with this number, at the next start
    {
      std::lock_guard<std::mutex> g{d.mtx};
      d.progress.events = number;
      d.progress.cursors[member] = token;
      d.progress.pending = false;
      d.progress.pending_member.clear();
      d.progress.pending_token = 0;
    }
    if (!persist(d))
      return;
  }
}

http_response fhir_subscriptions::answer(const http_request& req, const std::vector<std::string>& parts) {
  // parts: fhir, {tenant}, Subscription[, {id}[, $status]]
  auto& tenant = parts[1];
  if (!models::is_valid_id(tenant))
    return fhir_outcome_response(400, "invalid", "tenant: 1-63 characters of [a-z0-9-]");
  if (parts.size() == 3) {
    if (req.method == "POST")
      return create(req, tenant);
    if (req.method != "GET")
      return fhir_outcome_response(405, "not-supported", "use POST to create a Subscription, GET to list them");
    if (auto refused = authorize(req, tenant, {}, {}, "fhir-subscription-list"))
      return *refused;
    return list(tenant, fhir_base_url(req, tenant));
  }
  auto& id = parts[3];
  if (!models::is_valid_id(id))
    return fhir_outcome_response(400, "invalid", "the subscription id: 1-63 characters of [a-z0-9-]");
  bool status_only = parts.size() == 5 && parts[4] == "$status";
  if (parts.size() > 5 || (parts.size() == 5 && !status_only))
    return fhir_outcome_response(404, "not-found", "the paths are Subscription, Subscription/{id} and Subscription/{id}/$status");
  if (req.method == "DELETE" && !status_only) {
    if (auto refused = authorize(req, tenant, {}, {}, "fhir-subscription-delete"))
      return *refused;
    if (!token_has_role(req.header("authorization"), "service"))
      return fhir_outcome_response(403, "forbidden", "only an integration (a token with the service role) deletes subscriptions");
    return remove(tenant, id);
  }
  if (req.method != "GET")
    return fhir_outcome_response(405, "not-supported", status_only ? "use GET" : "use GET or DELETE");
  if (auto refused = authorize(req, tenant, {}, {}, "fhir-subscription-read"))
    return *refused;
  return read(tenant, id, status_only);
}

std::optional<http_response> fhir_subscriptions::authorize(const http_request& req, const std::string& tenant,
                                                           const std::string& ward, const std::string& patient_id,
                                                           const char* what) {
  std::shared_ptr<grpc::Channel> api;
  {
    std::lock_guard<std::mutex> g{mtx_};
    if (stopped_ || !api_)
      return fhir_outcome_response(503, "transient", stopped_ ? "the node is stopping" : "the node is starting");
    api = api_;
  }
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (auto auth = req.header("authorization"); !auth.empty())
    c.AddMetadata("authorization", std::string{auth});
  c.AddMetadata(std::string{composed_by_header}, std::string{what} + " " + in_process_secret());
  v1::ListAlertsRequest r;
  r.set_parent("tenants/" + tenant);
  r.set_ward(ward);
  if (!patient_id.empty())
    r.set_patient("tenants/" + tenant + "/patients/" + patient_id);
  r.set_page_size(1);
  v1::ListAlertsResponse resp;
  auto st = v1::AlertService::NewStub(api)->ListAlerts(&c, r, &resp);
  if (st.ok())
    return std::nullopt;
  auto f = fhir_failure(st, "reading the tenant's alerts");
  return http_response{f.http_status, std::string{fhir_json}, std::move(f.json)};
}

http_response fhir_subscriptions::create(const http_request& req, const std::string& tenant) {
  auto d = std::make_shared<delivery>();
  if (auto bad = parse_subscription(req.body, d->spec))
    return fhir_outcome_response(400, "invalid", *bad);
  if (auto refused = authorize(req, tenant, d->spec.ward, d->spec.patient_id, "fhir-subscription-create"))
    return *refused;
  // A subscription sends the tenant's alerts to a system outside: only an
  // integration's account sets one up, not a clinician's.
  if (!token_has_role(req.header("authorization"), "service"))
    return fhir_outcome_response(403, "forbidden", "only an integration (a token with the service role) creates subscriptions");
  {
    std::lock_guard<std::mutex> g{mtx_};
    size_t of_tenant = 0;
    for (auto& [key, x] : deliveries_)
      of_tenant += x->spec.tenant == tenant;
    if (of_tenant >= s_.max_per_tenant || deliveries_.size() >= s_.max_total)
      return fhir_outcome_response(422, "business-rule",
                     fmt::format("at most {} subscriptions per tenant and {} per node: delete one first",
                                 s_.max_per_tenant, s_.max_total));
  }
  d->spec.tenant = tenant;
  d->spec.id = new_id();
  d->spec.base_url = fhir_base_url(req, tenant);
  // Its events start now on every member that can be reached (one that
  // cannot: from when it can).
  open_feeds(*d, false);  // recorded with the subscription below
  if (!d->feeds.count(""))
    return fhir_outcome_response(503, "transient", "this node's alert events cannot be followed: try again");
  if (auto err = storage_.put(d->key(), subscription_record(d->spec, d->progress)))
    return fhir_outcome_response(503, "transient", "the subscription could not be recorded: " + *err);
  auto body = subscription_resource(d->spec, d->progress);
  auto location = d->spec.base_url + "/Subscription/" + d->spec.id;
  spdlog::info("FHIR subscription {} created (topic {})", d->spec.id,
               d->spec.topic == subscription_topic::news2 ? "news2" : "alerts");
  launch(std::move(d));
  count_statuses();
  return {201, std::string{fhir_json}, std::move(body), {{"Location", location}}};
}

http_response fhir_subscriptions::read(const std::string& tenant, const std::string& id, bool status_only) {
  std::shared_ptr<delivery> d;
  {
    std::lock_guard<std::mutex> g{mtx_};
    if (auto i = deliveries_.find(tenant + "/" + id); i != deliveries_.end())
      d = i->second;
  }
  if (!d)
    return fhir_outcome_response(404, "not-found", "no such subscription in this tenant");
  auto p = d->now();
  return {200, std::string{fhir_json},
          status_only ? subscription_status(d->spec, p) : subscription_resource(d->spec, p)};
}

http_response fhir_subscriptions::list(const std::string& tenant, const std::string& base) {
  json entries = json::array();
  std::vector<std::shared_ptr<delivery>> of_tenant;
  {
    std::lock_guard<std::mutex> g{mtx_};
    for (auto& [key, d] : deliveries_)
      if (d->spec.tenant == tenant)
        of_tenant.push_back(d);
  }
  for (auto& d : of_tenant)
    entries.push_back({{"fullUrl", base + "/Subscription/" + d->spec.id},
                       {"resource", json::parse(subscription_resource(d->spec, d->now()))},
                       {"search", {{"mode", "match"}}}});
  json b{{"resourceType", "Bundle"}, {"type", "searchset"}, {"total", of_tenant.size()}, {"entry", std::move(entries)}};
  return {200, std::string{fhir_json}, b.dump()};
}

http_response fhir_subscriptions::remove(const std::string& tenant, const std::string& id) {
  std::shared_ptr<delivery> d;
  {
    std::lock_guard<std::mutex> g{mtx_};
    auto i = deliveries_.find(tenant + "/" + id);
    if (i == deliveries_.end())
      return fhir_outcome_response(404, "not-found", "no such subscription in this tenant");
    d = std::move(i->second);
    deliveries_.erase(i);
  }
  {
    std::lock_guard<std::mutex> g{d->mtx};
    d->stopping = true;
  }
  d->wake.notify_all();
  if (d->thread.joinable())
    d->thread.join();
  if (auto err = storage_.drop(d->key())) {  // kept: it goes on as before
    spdlog::error("FHIR subscription {}: removing its record failed: {}", id, *err);
    auto again = std::make_shared<delivery>();
    again->spec = d->spec;
    again->progress = d->now();
    launch(std::move(again));
    return fhir_outcome_response(503, "transient", "the subscription's record could not be removed: try again");
  }
  spdlog::info("FHIR subscription {} deleted", id);
  count_statuses();
  return {204, std::string{fhir_json}, {}};
}

}  // namespace healthtwin::services
