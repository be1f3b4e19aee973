#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

namespace healthtwin::services {

/// Limits of an HTTP(S) listener against slow and abusive clients. None can
/// change at run time.
struct http_limits {
  /// Open connections in total. At the limit a new connection evicts the
  /// oldest one still waiting for its request (a half-open or idle one);
  /// when none waits, the new one is closed. Default 1,024.
  size_t max_connections = 1024;
  /// Open connections from one peer address, evicting as above among that
  /// peer's own. Default 64.
  size_t max_connections_per_peer = 64;
  /// Time from accepting a connection (TLS handshake included) to the end
  /// of its first request's headers; slower clients are disconnected.
  /// Default 2 s.
  std::chrono::milliseconds header_timeout{2000};
  /// Time a kept-alive connection may take to send its next request's
  /// headers. Default 5 s.
  std::chrono::milliseconds idle_timeout{5000};
  /// Time to write a response. Default 10 s.
  std::chrono::milliseconds write_timeout{10'000};
  /// Request header bytes. Default 8 KiB.
  uint32_t max_header_bytes = 8192;
  /// Request body bytes. Default 64 KiB.
  uint64_t max_body_bytes = 64 << 10;
  /// Bytes a streamed answer may have queued, unsent, before its client
  /// counts as too slow and is disconnected. Default 1 MiB.
  size_t max_stream_backlog = 1 << 20;
};

/// A request as the listener's handler sees it.
struct http_request {
  std::string method;  ///< "GET", "HEAD", ...
  std::string target;  ///< path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// The first header named `lower_case_name` (names compare without
  /// case); empty when there is none.
  std::string_view header(std::string_view lower_case_name) const {
    for (auto& [k, v] : headers)
      if (std::equal(k.begin(), k.end(), lower_case_name.begin(), lower_case_name.end(),
                     [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; }))
        return v;
    return {};
  }
};

/// A handler's answer.
struct http_response {
  unsigned status = 200;
  std::string content_type = "text/plain";
  std::string body;
  /// Further headers (Cache-Control: no-store is always set).
  std::vector<std::pair<std::string, std::string>> headers = {};
};

/// Where an asynchronous handler sends its answer, from any thread: once
/// with reply(), or as a stream — open_stream(), then write() any number
/// of times, then close(). A responder dropped without an answer answers
/// 500. Thread-safe.
class http_responder {
public:
  virtual ~http_responder() = default;
  /// The whole answer; later calls are ignored.
  virtual void reply(http_response r) = 0;
  /// Starts a streamed answer (200, chunked, the connection closes after
  /// it), e.g. server-sent events. `on_gone` runs once when the stream
  /// ends for a reason other than close(): the client went away, was too
  /// slow, or the listener stops.
  virtual void open_stream(std::string content_type, std::function<void()> on_gone) = 0;
  /// Appends to the open stream; false once it has ended (then `on_gone`
  /// ran or runs). A client that lets more than
  /// http_limits::max_stream_backlog bytes queue up is disconnected.
  virtual bool write(std::string chunk) = 0;
  /// Ends the stream.
  virtual void close() = 0;
};

/// Counts of what the listener refused, for its probe (read any time).
struct http_listener_stats {
  uint64_t evicted = 0;           ///< connections closed to admit a newer one
  uint64_t refused = 0;           ///< new connections closed at a limit
  uint64_t header_timeouts = 0;   ///< connections that sent no full headers in time
  uint64_t open = 0;              ///< connections open now
};

/// An HTTP/1.1 (and HTTPS) listener on Boost.Beast: accepts connections,
/// bounds them in total and per peer, disconnects clients whose headers are
/// slower than http_limits::header_timeout, and answers each request with
/// `handler` (called on one of the listener's threads; it must not block
/// for long). Thread-safe; stops when destroyed.
class http_listener {
public:
  /// Answers at once, on a listener thread.
  using handler = std::function<http_response(const http_request&)>;
  /// Answers later, through the responder (it must not block either).
  using async_handler = std::function<void(http_request, std::shared_ptr<http_responder>)>;

  struct settings {
    std::string listen;        ///< host:port; port 0 picks a free one
    int threads = 2;           ///< I/O threads
    std::string tls_cert_pem;  ///< PEM chain; empty: plaintext
    std::string tls_key_pem;
    /// Set with tls_reload: the files the PEMs came from, loaded again for
    /// new connections once they changed (checked on accept, at most every
    /// tls_reload); files that do not load leave the last good ones in use.
    std::string tls_cert_file, tls_key_file;
    std::chrono::seconds tls_reload{0};
    http_limits limits;
  };

  /// Listens and starts the threads; an error names the address.
  static caf::expected<std::unique_ptr<http_listener>> start(const settings& s, handler h);
  /// The same with a handler that answers asynchronously. Whoever holds
  /// responders must drop them before the listener is destroyed.
  static caf::expected<std::unique_ptr<http_listener>> start_async(const settings& s, async_handler h);
  ~http_listener();

  uint16_t port() const noexcept;
  http_listener_stats stats() const;

  struct impl;

private:
  explicit http_listener(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::services
