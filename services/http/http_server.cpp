#include "services/http/http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <civetweb.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/sec.hpp>

namespace healthtwin::services {

struct http_server::impl {
  prometheus::Registry* metrics = nullptr;
  const std::atomic<bool>* ready = nullptr;
  std::function<void()> before_scrape;
  mg_context* ctx = nullptr;
  uint16_t port = 0;
  in_addr wake_addr{htonl(INADDR_LOOPBACK)};  // where the stop waker connects

  ~impl() {
    if (!ctx)
      return;
    // civetweb's accept loop polls with a 2 s quantum before it notices the
    // stop flag; connecting to ourselves wakes it at once.
    std::atomic<bool> stopped{false};
    std::thread waker([&] {
      while (!stopped) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr = wake_addr;
        ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    mg_stop(ctx);
    stopped = true;
    waker.join();
  }
};

namespace {

int reply(mg_connection* conn, int status, const char* type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            status, mg_get_response_code_text(conn, status), type, body.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

bool is_get(mg_connection* conn) {
  auto* info = mg_get_request_info(conn);
  return info && std::strcmp(info->request_method, "GET") == 0;
}

int on_metrics(mg_connection* conn, void* data) {
  if (!is_get(conn))
    return reply(conn, 405, "text/plain", "method not allowed\n");
  auto* im = static_cast<http_server::impl*>(data);
  if (im->before_scrape)
    im->before_scrape();
  prometheus::TextSerializer serializer;
  return reply(conn, 200, "text/plain; version=0.0.4", serializer.Serialize(im->metrics->Collect()));
}

int on_healthz(mg_connection* conn, void*) {
  if (!is_get(conn))
    return reply(conn, 405, "text/plain", "method not allowed\n");
  return reply(conn, 200, "text/plain", "ok\n");
}

int on_readyz(mg_connection* conn, void* data) {
  if (!is_get(conn))
    return reply(conn, 405, "text/plain", "method not allowed\n");
  auto* im = static_cast<http_server::impl*>(data);
  if (im->ready->load())
    return reply(conn, 200, "text/plain", "ready\n");
  return reply(conn, 503, "text/plain", "not ready\n");
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
                                                               std::function<void()> before_scrape) {
  mg_init_library(0);
  auto im = std::make_unique<impl>();
  im->before_scrape = std::move(before_scrape);
  im->metrics = &metrics;
  im->ready = &ready;
  auto threads = std::to_string(settings.threads);
  const char* options[] = {"listening_ports", settings.listen.c_str(),
                           "num_threads", threads.c_str(),
                           "request_timeout_ms", "10000",
                           nullptr};
  mg_callbacks callbacks{};
  im->ctx = mg_start(&callbacks, nullptr, options);
  if (!im->ctx)
    return caf::make_error(caf::sec::cannot_open_port,
                           "cannot listen for HTTP on " + settings.listen);
  mg_set_request_handler(im->ctx, "/metrics$", on_metrics, im.get());
  mg_set_request_handler(im->ctx, "/healthz$", on_healthz, im.get());
  mg_set_request_handler(im->ctx, "/readyz$", on_readyz, im.get());
  mg_server_port ports[4];
  int n = mg_get_server_ports(im->ctx, 4, ports);
  if (n > 0)
    im->port = static_cast<uint16_t>(ports[0].port);
  // A specific IPv4 listen address is where the stop waker must connect.
  auto host = settings.listen.substr(0, settings.listen.rfind(':'));
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1 && a.s_addr != htonl(INADDR_ANY))
    im->wake_addr = a;
  return std::unique_ptr<http_server>(new http_server(std::move(im)));
}

}  // namespace healthtwin::services
