#include "services/http/server_socket.hpp"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "services/grpc/read_file.hpp"

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
  if (SSL_CTX_check_private_key(tls.native_handle()) != 1) {
    why = "the TLS key does not belong to the certificate";
    return std::nullopt;
  }
  return tls;
}

std::unique_ptr<rotating_tls> rotating_tls::open(const std::string& cert_pem, const std::string& key_pem,
                                                 std::string cert_file, std::string key_file,
                                                 std::chrono::seconds reload, std::string name, std::string& why) {
  auto first = server_tls(cert_pem, key_pem, why);
  if (!first)
    return nullptr;
  std::unique_ptr<rotating_tls> t{new rotating_tls()};
  t->contexts_.push_back(std::make_unique<asio::ssl::context>(std::move(*first)));
  t->cert_file_ = std::move(cert_file);
  t->key_file_ = std::move(key_file);
  t->reload_ = reload;
  t->name_ = std::move(name);
  t->stamp_ = file_stamps({t->cert_file_, t->key_file_});
  t->checked_ = std::chrono::steady_clock::now();
  return t;
}

asio::ssl::context& rotating_tls::current() {
  auto now = std::chrono::steady_clock::now();
  if (reload_.count() == 0 || cert_file_.empty() || now - checked_ < reload_)
    return *contexts_.back();
  checked_ = now;
  auto stamp = file_stamps({cert_file_, key_file_});
  if (stamp == stamp_)
    return *contexts_.back();
  stamp_ = stamp;  // a change that does not load is said once
  auto cert = read_file(cert_file_), key = read_file(key_file_);
  std::string why = "they cannot be read";
  std::optional<asio::ssl::context> next;
  if (cert && key)
    next = server_tls(*cert, *key, why);
  if (!next) {
    spdlog::warn("{}: the changed TLS certificate files do not load ({}); the last good certificate stays in use",
                 name_, why);
    return *contexts_.back();
  }
  contexts_.push_back(std::make_unique<asio::ssl::context>(std::move(*next)));
  spdlog::info("{}: the changed TLS certificate serves new connections", name_);
  return *contexts_.back();
}

}  // namespace healthtwin::services
