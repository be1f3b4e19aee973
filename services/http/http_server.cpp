#include "services/http/http_server.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "services/grpc/read_file.hpp"
#include "services/http/dashboard_assets.hpp"
#include "services/http/fhir_endpoint.hpp"
#include "services/http/http_listener.hpp"
#include "services/http/json_gateway.hpp"

#include <caf/sec.hpp>

namespace healthtwin::services {

namespace {

/// The listener's refusals as metrics (healthtwin_http_*), read at scrape.
class http_probe {
public:
  explicit http_probe(prometheus::Registry& reg)
      : refusals_(prometheus::BuildCounter()
                      .Name("healthtwin_http_connections_closed_total")
                      .Help("HTTP connections the listener closed to protect itself, by reason")
                      .Register(reg)),
        evicted_(refusals_.Add({{"reason", "evicted"}})),
        refused_(refusals_.Add({{"reason", "limit"}})),
        timeouts_(refusals_.Add({{"reason", "header_timeout"}})),
        open_(prometheus::BuildGauge()
                  .Name("healthtwin_http_connections")
                  .Help("HTTP connections open now")
                  .Register(reg)
                  .Add({})) {}

  void update(const http_listener_stats& s) {
    advance(evicted_, s.evicted);
    advance(refused_, s.refused);
    advance(timeouts_, s.header_timeouts);
    open_.Set(static_cast<double>(s.open));
  }

private:
  static void advance(prometheus::Counter& c, uint64_t total) {
    if (auto now = static_cast<double>(total); now > c.Value())
      c.Increment(now - c.Value());
  }

  prometheus::Family<prometheus::Counter>& refusals_;
  prometheus::Counter& evicted_;
  prometheus::Counter& refused_;
  prometheus::Counter& timeouts_;
  prometheus::Gauge& open_;
};

}  // namespace

struct http_server::impl {
  prometheus::Registry* metrics = nullptr;
  const std::atomic<bool>* ready = nullptr;
  std::function<void()> before_scrape;
  std::function<std::string()> health_problem;
  std::unique_ptr<http_probe> probe;
  std::unique_ptr<json_gateway> gateway;
  std::unique_ptr<fhir_endpoint> fhir;
  std::unique_ptr<http_listener> listener;  // last: stopped first

  ~impl() {
    if (gateway)
      gateway->stop();  // drops its responders while the listener exists
    if (fhir)
      fhir->stop();
  }

  void route(http_request req, std::shared_ptr<http_responder> out) {
    if (req.target.starts_with("/api/"))
      return gateway->handle(std::move(req), std::move(out));
    if (req.target.starts_with("/fhir/"))
      return fhir->handle(req, std::move(out));
    out->reply(answer(req));
  }

  http_response answer(const http_request& req) {
    if (req.method != "GET" && req.method != "HEAD")
      return {405, "text/plain", "method not allowed\n", {{"Allow", "GET, HEAD"}}};
    auto path = std::string_view{req.target}.substr(0, req.target.find('?'));
    if (auto* a = find_dashboard_asset(path))
      return {200, std::string{a->content_type}, std::string{a->body}, dashboard_headers()};
    if (path == "/metrics") {
      if (before_scrape)
        before_scrape();
      probe->update(listener->stats());
      prometheus::TextSerializer serializer;
      return {200, "text/plain; version=0.0.4", serializer.Serialize(metrics->Collect())};
    }
    auto problem = health_problem ? health_problem() : std::string{};
    if (path == "/healthz")
      return problem.empty() ? http_response{200, "text/plain", "ok\n"}
                             : http_response{503, "text/plain", "unhealthy: " + problem + "\n"};
    if (path == "/readyz")
      return ready->load() && problem.empty() ? http_response{200, "text/plain", "ready\n"}
                                              : http_response{503, "text/plain", "not ready\n"};
    return {404, "text/plain", "not found\n"};
  }
};

http_server::http_server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
http_server::~http_server() = default;

uint16_t http_server::port() const noexcept {
  return impl_->listener->port();
}

void http_server::attach_api(std::shared_ptr<grpc::Channel> channel) {
  impl_->fhir->attach(channel);
  impl_->gateway->attach(std::move(channel));
}

void http_server::attach_subscriptions(fhir_subscriptions* subs) {
  impl_->fhir->attach_subscriptions(subs);
}

void http_server::stop_api() {
  impl_->gateway->stop();
  impl_->fhir->stop();
}

caf::expected<std::unique_ptr<http_server>> http_server::start(const http_settings& settings,
                                                               prometheus::Registry& metrics,
                                                               const std::atomic<bool>& ready,
                                                               std::function<void()> before_scrape,
                                                               std::function<std::string()> health_problem) {
  auto im = std::make_unique<impl>();
  im->before_scrape = std::move(before_scrape);
  im->health_problem = std::move(health_problem);
  im->metrics = &metrics;
  im->ready = &ready;
  im->probe = std::make_unique<http_probe>(metrics);
  http_listener::settings ls;
  ls.listen = settings.listen;
  ls.threads = settings.threads;
  ls.limits = settings.limits;
  if (!settings.tls_cert_file.empty()) {
    auto cert = read_file(settings.tls_cert_file), key = read_file(settings.tls_key_file);
    if (!cert || !key)
      return caf::make_error(caf::sec::cannot_open_port, "cannot listen for HTTP on " + settings.listen +
                                                             ": cannot read the TLS certificate or key");
    ls.tls_cert_pem = std::move(*cert);
    ls.tls_key_pem = std::move(*key);
    ls.tls_cert_file = settings.tls_cert_file;
    ls.tls_key_file = settings.tls_key_file;
    ls.tls_reload = settings.tls_reload;
  }
  im->gateway = std::make_unique<json_gateway>(settings.gateway);
  im->fhir = std::make_unique<fhir_endpoint>();
  auto* raw = im.get();
  auto listener = http_listener::start_async(
      ls, [raw](http_request r, std::shared_ptr<http_responder> out) { raw->route(std::move(r), std::move(out)); });
  if (!listener)
    return listener.error();
  im->listener = std::move(*listener);
  return std::unique_ptr<http_server>(new http_server(std::move(im)));
}

}  // namespace healthtwin::services
