#include "services/hl7/mllp_client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace healthtwin::hl7 {

namespace {

constexpr char start_block = 0x0b, end_block = 0x1c, carriage_return = 0x0d;
constexpr size_t max_frame_bytes = 64 << 10;

// A TCP connection to host:port within `timeout`; -1 on failure (why in `error`).
int connect_to(const std::string& host, const std::string& port, std::chrono::milliseconds timeout,
               std::string& error) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    error = gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (auto* ai = found; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect(), writes
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);  // and the TLS handshake's reads
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

std::string tls_error(const char* what) {
  auto code = ERR_get_error();
  char text[256] = {};
  if (code)
    ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return std::string{what} + (code ? std::string{": "} + text : std::string{});
}

}  // namespace

struct mllp_connection::tls_state {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  ~tls_state() {
    if (ssl) {
      SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    if (ctx)
      SSL_CTX_free(ctx);
  }
};

mllp_connection::mllp_connection(int fd, std::unique_ptr<tls_state> tls) : fd_(fd), tls_(std::move(tls)) {}

mllp_connection::~mllp_connection() {
  tls_.reset();
  ::close(fd_);
}

std::unique_ptr<mllp_connection> mllp_connection::open(const std::string& address, const mllp_client_tls& tls,
                                                       std::chrono::milliseconds timeout, std::string& error) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    error = "not host:port";
    return nullptr;
  }
  auto host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int fd = connect_to(host, address.substr(colon + 1), timeout, error);
  if (fd < 0)
    return nullptr;
  if (!tls.enabled())
    return std::unique_ptr<mllp_connection>(new mllp_connection(fd, nullptr));
  auto t = std::make_unique<tls_state>();
  auto fail = [&](std::string why) -> std::unique_ptr<mllp_connection> {
    error = std::move(why);
    t.reset();
    ::close(fd);
    return nullptr;
  };
  t->ctx = SSL_CTX_new(TLS_client_method());
  if (!t->ctx || SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1)
    return fail(tls_error("TLS"));
  SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(t->ctx, tls.ca_file.c_str(), nullptr) != 1)
    return fail(tls_error(("the CA file " + tls.ca_file).c_str()));
  if (!tls.cert_file.empty() &&
      (SSL_CTX_use_certificate_chain_file(t->ctx, tls.cert_file.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(t->ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(t->ctx) != 1))
    return fail(tls_error(("the certificate " + tls.cert_file).c_str()));
  t->ssl = SSL_new(t->ctx);
  if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1)
    return fail(tls_error("TLS"));
  // The receiver's certificate must name the host we dialled.
  in6_addr ip{};
  bool literal = inet_pton(AF_INET, host.c_str(), &ip) == 1 || inet_pton(AF_INET6, host.c_str(), &ip) == 1;
  auto* param = SSL_get0_param(t->ssl);
  if (literal ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1
              : (SSL_set_tlsext_host_name(t->ssl, host.c_str()) != 1 || SSL_set1_host(t->ssl, host.c_str()) != 1))
    return fail(tls_error("TLS"));
  if (SSL_connect(t->ssl) != 1) {
    auto verify = SSL_get_verify_result(t->ssl);
    return fail(verify != X509_V_OK ? std::string{"the receiver's certificate: "} + X509_verify_cert_error_string(verify)
                                    : tls_error("the TLS handshake"));
  }
  return std::unique_ptr<mllp_connection>(new mllp_connection(fd, std::move(t)));
}

bool mllp_connection::send_frame(const std::string& message) {
  auto bytes = std::string{start_block} + message + end_block + carriage_return;
  for (size_t sent = 0; sent < bytes.size();) {
    long n = tls_ ? SSL_write(tls_->ssl, bytes.data() + sent, static_cast<int>(bytes.size() - sent))
                  : ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

long mllp_connection::receive(char* buf, size_t size) {
  return tls_ ? SSL_read(tls_->ssl, buf, static_cast<int>(size)) : ::recv(fd_, buf, size, 0);
}

std::optional<std::string> mllp_connection::read_frame(std::chrono::milliseconds timeout,
                                                       const std::atomic<bool>& stopping) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    if (auto s = in_.find(start_block); s != std::string::npos)
      if (auto e = in_.find(std::string{end_block} + carriage_return, s); e != std::string::npos) {
        auto frame = in_.substr(s + 1, e - s - 1);
        in_.erase(0, e + 2);
        return frame;
      }
    if (in_.size() > max_frame_bytes)
      return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || stopping)
      return std::nullopt;
    if (!tls_ || SSL_pending(tls_->ssl) == 0) {  // TLS may hold decrypted bytes already
      pollfd p{fd_, POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 200)));
      if (ready < 0)
        return std::nullopt;
      if (ready == 0)
        continue;
    }
    auto n = receive(buf, sizeof buf);
    if (n <= 0)
      return std::nullopt;
    in_.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace healthtwin::hl7
