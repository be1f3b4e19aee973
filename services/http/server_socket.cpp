#include "services/http/server_socket.hpp"

#include <openssl/ssl.h>

namespace healthtwin::services {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::string listen_on(tcp::acceptor& acceptor, const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    return "expected host:port";
  auto host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[')
    host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  tcp::resolver resolver{acceptor.get_executor()};
  auto endpoints = resolver.resolve(host, listen.substr(colon + 1),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty())
    return "the address does not resolve";
  auto endpoint = endpoints.begin()->endpoint();
  acceptor.open(endpoint.protocol(), ec);
  if (!ec)
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    acceptor.bind(endpoint, ec);
  if (!ec)
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return "the port is taken (" + ec.message() + ")";
  return {};
}

std::optional<asio::ssl::context> server_tls(const std::string& cert_pem, const std::string& key_pem,
                                             std::string& why) {
  asio::ssl::context tls{asio::ssl::context::tls_server};
  boost::system::error_code ec;
  tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  tls.use_certificate_chain(asio::buffer(cert_pem), ec);
  if (!ec)
    tls.use_private_key(asio::buffer(key_pem), asio::ssl::context::pem, ec);
  if (ec) {
    why = "the TLS certificate and key do not load (" + ec.message() + ")";
    return std::nullopt;
  }
  return tls;
}

}  // namespace healthtwin::services
