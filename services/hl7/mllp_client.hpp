#pragma once
// A client connection to a receiver's MLLP listener (alarm managers,
// nurse-call systems): plain TCP, or TLS 1.2+ with the receiver's
// certificate and host name verified against a CA file and, optionally,
// this gateway's own certificate (mutual TLS, as IHE ATNA secure nodes
// expect). Frames are sent whole and read within a deadline.

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace healthtwin::hl7 {

struct mllp_client_tls {
  std::string ca_file;    ///< set: TLS, the receiver's certificate must chain to these CAs
  std::string cert_file;  ///< set (with key_file): this gateway's certificate, for mutual TLS
  std::string key_file;
  bool enabled() const noexcept { return !ca_file.empty(); }
};

class mllp_connection {
public:
  /// Connects to host:port (and completes the TLS handshake) within
  /// `timeout`; null with `error` set when it cannot.
  static std::unique_ptr<mllp_connection> open(const std::string& address, const mllp_client_tls& tls,
                                               std::chrono::milliseconds timeout, std::string& error);
  ~mllp_connection();
  mllp_connection(const mllp_connection&) = delete;
  mllp_connection& operator=(const mllp_connection&) = delete;

  /// Sends `message` framed (VT ... FS CR); false when the connection failed.
  bool send_frame(const std::string& message);
  /// One frame's content within `timeout`; nullopt on timeout, close,
  /// garbage or `stopping`.
  std::optional<std::string> read_frame(std::chrono::milliseconds timeout, const std::atomic<bool>& stopping);

private:
  struct tls_state;
  mllp_connection(int fd, std::unique_ptr<tls_state> tls);
  long receive(char* buf, size_t size);

  int fd_;
  std::unique_ptr<tls_state> tls_;
  std::string in_;
};

}  // namespace healthtwin::hl7
