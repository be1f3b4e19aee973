#include "services/http/http_server.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

#include <microhttpd.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/sec.hpp>

#include "services/grpc/read_file.hpp"

namespace healthtwin::services {

struct http_server::impl {
  prometheus::Registry* metrics = nullptr;
  const std::atomic<bool>* ready = nullptr;
  std::function<void()> before_scrape;
  std::function<std::string()> health_problem;
  std::string tls_cert, tls_key;  // PEM contents; libmicrohttpd keeps pointers to them
  MHD_Daemon* daemon = nullptr;
  uint16_t port = 0;

  ~impl() {
    if (daemon)
      MHD_stop_daemon(daemon);
  }
};

namespace {

MHD_Result reply(MHD_Connection* conn, unsigned status, const char* type, const std::string& body) {
  auto* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                            MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", type);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  auto ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

MHD_Result on_request(void* cls, MHD_Connection* conn, const char* url, const char* method,
                      const char*, const char*, size_t*, void**) {
  auto* im = static_cast<http_server::impl*>(cls);
  if (std::strcmp(method, "GET") != 0)
    return reply(conn, 405, "text/plain", "method not allowed\n");
  if (std::strcmp(url, "/metrics") == 0) {
    if (im->before_scrape)
      im->before_scrape();
    prometheus::TextSerializer serializer;
    return reply(conn, 200, "text/plain; version=0.0.4", serializer.Serialize(im->metrics->Collect()));
  }
  auto problem = im->health_problem ? im->health_problem() : std::string{};
  if (std::strcmp(url, "/healthz") == 0)
    return problem.empty() ? reply(conn, 200, "text/plain", "ok\n")
                           : reply(conn, 503, "text/plain", "unhealthy: " + problem + "\n");
  if (std::strcmp(url, "/readyz") == 0)
    return im->ready->load() && problem.empty() ? reply(conn, 200, "text/plain", "ready\n")
                                                : reply(conn, 503, "text/plain", "not ready\n");
  return reply(conn, 404, "text/plain", "not found\n");
}

}  // namespace

http_server::http_server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
http_server::~http_server() = default;

uint16_t http_server::port() const noexcept {
  return impl_->port;
}

caf::expected<std::unique_ptr<http_server>> http_server::start(const http_settings& settings,
                                                               prometheus::Registry& metrics,
                                                               const std::atomic<bool>& ready,
                                                               std::function<void()> before_scrape,
                                                               std::function<std::string()> health_problem) {
  auto fail = [&](std::string why) {
    return caf::make_error(caf::sec::cannot_open_port,
                           "cannot listen for HTTP on " + settings.listen + ": " + why);
  };
  auto im = std::make_unique<impl>();
  im->before_scrape = std::move(before_scrape);
  im->health_problem = std::move(health_problem);
  im->metrics = &metrics;
  im->ready = &ready;
  bool tls = !settings.tls_cert_file.empty();
  if (tls) {
    auto cert = read_file(settings.tls_cert_file), key = read_file(settings.tls_key_file);
    if (!cert || !key)
      return fail("cannot read the TLS certificate or key");
    im->tls_cert = std::move(*cert);
    im->tls_key = std::move(*key);
  }

  // host:port (the host may be a bracketed IPv6 literal), resolved numerically.
  auto colon = settings.listen.rfind(':');
  auto host = settings.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[')
    host = host.substr(1, host.size() - 2);
  auto port = settings.listen.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addr = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &addr) != 0 || !addr)
    return fail("the address does not resolve");
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (addr->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (tls)
    flags |= MHD_USE_TLS;
  // TLS 1.2 or 1.3 only (GnuTLS priority string).
  const char* priorities = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
  im->daemon = tls ? MHD_start_daemon(flags, 0, nullptr, nullptr, on_request, im.get(),
                                      MHD_OPTION_SOCK_ADDR, addr->ai_addr,
                                      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(settings.threads),
                                      MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                      MHD_OPTION_HTTPS_MEM_CERT, im->tls_cert.c_str(),
                                      MHD_OPTION_HTTPS_MEM_KEY, im->tls_key.c_str(),
                                      MHD_OPTION_HTTPS_PRIORITIES, priorities, MHD_OPTION_END)
                   : MHD_start_daemon(flags, 0, nullptr, nullptr, on_request, im.get(),
                                      MHD_OPTION_SOCK_ADDR, addr->ai_addr,
                                      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(settings.threads),
                                      MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  freeaddrinfo(addr);
  if (!im->daemon)
    return fail(tls ? "the port is taken, or the TLS certificate and key do not load" : "the port is taken");
  auto* info = MHD_get_daemon_info(im->daemon, MHD_DAEMON_INFO_BIND_PORT);
  im->port = info ? info->port : 0;
  return std::unique_ptr<http_server>(new http_server(std::move(im)));
}

}  // namespace healthtwin::services
