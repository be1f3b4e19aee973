#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

namespace healthtwin::services {

/// Opens, binds and listens `acceptor` on `listen` (host:port; the host may
/// be a bracketed IPv6 literal; port 0 picks a free one). Empty on success,
/// else why not ("the port is taken (...)").
std::string listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& listen);

/// A TLS server context (TLS 1.2 or later) with `cert_pem` (chain) and
/// `key_pem`; nullopt with `why` set when they do not load.
std::optional<boost::asio::ssl::context> server_tls(const std::string& cert_pem, const std::string& key_pem,
                                                    std::string& why);

/// The TLS context of a listener whose certificate may be rotated.
/// current(), called on accept (one at a time), gives the context for a new
/// connection: once the certificate files changed (looked at, at most every
/// `reload`) and load, a new one, else the last good one. Every context
/// stays alive, since sessions refer to theirs (rotations are rare).
class rotating_tls {
public:
  /// From the PEMs read at start (nullptr and `why` when they do not
  /// load); `cert_file`/`key_file` are read again when they change, unless
  /// `reload` is 0. `name` prefixes the log lines ("http", "hl7").
  static std::unique_ptr<rotating_tls> open(const std::string& cert_pem, const std::string& key_pem,
                                            std::string cert_file, std::string key_file,
                                            std::chrono::seconds reload, std::string name, std::string& why);

  boost::asio::ssl::context& current();

private:
  rotating_tls() = default;

  std::vector<std::unique_ptr<boost::asio::ssl::context>> contexts_;
  std::string cert_file_, key_file_, name_, stamp_;
  std::chrono::seconds reload_{0};
  std::chrono::steady_clock::time_point checked_;
};

}  // namespace healthtwin::services
