#pragma once

#include <optional>
#include <string>

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

}  // namespace healthtwin::services
