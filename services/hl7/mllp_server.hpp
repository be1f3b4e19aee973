#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>

namespace healthtwin::hl7 {

/// Limits of an MLLP listener against slow, large and abusive senders.
struct mllp_limits {
  size_t max_message_bytes = 1 << 20;  ///< larger messages are answered by the handler's `too_large`
  size_t max_connections = 256;
  /// From a message's first byte to its end block; a sender slower than
  /// this is disconnected (its message was not taken: it resends).
  std::chrono::milliseconds message_timeout{30'000};
  /// A connection with no message under way for this long is closed.
  std::chrono::milliseconds idle_timeout{600'000};
  std::chrono::milliseconds write_timeout{10'000};
};

/// Counts of what the listener saw, for logs and tests.
struct mllp_stats {
  uint64_t messages = 0;      ///< complete frames handed to the handler
  uint64_t too_large = 0;     ///< frames over max_message_bytes
  uint64_t unterminated = 0;  ///< connections that ended inside a frame
  uint64_t refused = 0;       ///< connections closed at max_connections
  uint64_t open = 0;
};

/// An MLLP (HL7 Minimal Lower Layer Protocol, release 2) listener over TCP
/// or TLS: frames are 0x0B, the message, 0x1C 0x0D. Each connection's
/// messages are answered one at a time, in order: the next frame is read
/// only after the answer to the previous one is written, so an ACK always
/// belongs to the message before it. Bytes outside a frame are ignored.
/// The handler runs on a worker pool (it may block: a durable write).
class mllp_server {
public:
  struct handler {
    /// A complete message; returns the answer to frame back (an ACK).
    std::function<std::string(std::string message)> message;
    /// A message over the size limit: its first bytes (enough for MSH);
    /// returns the answer (an AR). The rest is read and dropped.
    std::function<std::string(std::string prefix, size_t limit)> too_large;
  };

  struct settings {
    std::string listen;        ///< host:port; port 0 picks a free one
    int io_threads = 1;
    int workers = 4;           ///< handler threads
    std::string tls_cert_pem;  ///< PEM chain; empty: plain TCP
    std::string tls_key_pem;
    /// Set with tls_reload: the files the PEMs came from, loaded again for
    /// new connections once they changed (rotation without a restart).
    std::string tls_cert_file, tls_key_file;
    std::chrono::seconds tls_reload{0};
    mllp_limits limits;
  };

  static caf::expected<std::unique_ptr<mllp_server>> start(const settings& s, handler h);
  ~mllp_server();

  uint16_t port() const noexcept;
  mllp_stats stats() const;

  struct impl;

private:
  explicit mllp_server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::hl7
