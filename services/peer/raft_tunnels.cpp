#include "services/peer/raft_tunnels.hpp"

#include <utility>  // before asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "services/http/server_socket.hpp"

// GCC 12 reports Boost 1.74's coroutine frames (allocated and freed by the
// frame's own operator new/delete pair) as mismatched: a false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace healthtwin::services {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using local_socket = asio::local::stream_protocol::socket;
using tls_stream = ssl::stream<tcp::socket>;
using boost::system::error_code;

namespace {

constexpr std::array<char, 4> magic{'H', 'T', 'R', '1'};       // a Raft tunnel
constexpr std::array<char, 4> copy_magic{'H', 'T', 'C', '1'};  // a request for a copy of the store
constexpr size_t max_name = 253;
constexpr auto setup_deadline = std::chrono::seconds{5};
constexpr size_t pump_chunk = 64 * 1024;

std::string host_of(const std::string& address) {
  auto host = address.substr(0, address.rfind(':'));
  if (host.size() > 2 && host.front() == '[')
    host = host.substr(1, host.size() - 2);
  return host;
}

// The peer's certificate names the member: its name or its address's host,
// among the certificate's subject alternative names or common name.
bool certificate_names(SSL* tls, const raft_peer& m) {
  X509* cert = SSL_get0_peer_certificate(tls);
  if (!cert)
    return false;
  constexpr unsigned flags = X509_CHECK_FLAG_ALWAYS_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
  auto names = [&](const std::string& n) {
    if (n.empty())
      return false;
    return X509_check_host(cert, n.data(), n.size(), flags, nullptr) == 1 ||
           X509_check_ip_asc(cert, n.c_str(), 0) == 1;
  };
  return names(m.name) || names(host_of(m.address));
}

// A printable, bounded prefix of what a peer sent, for the log.
std::string quoted(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

ssl::context make_context(ssl::context::method method, const tunnel_credentials& tls, std::string& why) {
  ssl::context ctx{method};
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  error_code ec;
  ctx.use_certificate_chain(asio::buffer(tls.cert_pem), ec);
  if (!ec)
    ctx.use_private_key(asio::buffer(tls.key_pem), ssl::context::pem, ec);
  if (ec)
    why = "the TLS certificate and key do not load (" + ec.message() + ")";
  else if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    why = "the TLS key does not belong to the certificate";
  else if (ctx.add_certificate_authority(asio::buffer(tls.ca_pem), ec); ec)
    why = "the cluster CA does not load (" + ec.message() + ")";
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

// Both directions of one tunnel; when either ends, both sockets close.
struct tunnel : std::enable_shared_from_this<tunnel> {
  tunnel(tls_stream s, local_socket l) : net(std::move(s)), local(std::move(l)) {}
  tls_stream net;
  local_socket local;

  void close() {
    error_code ignored;
    net.lowest_layer().close(ignored);
    local.close(ignored);
  }

  template <class From, class To>
  static asio::awaitable<void> copy(std::shared_ptr<tunnel> t, From& from, To& to) {
    std::vector<char> buf(pump_chunk);
    for (;;) {
      error_code ec;
      auto n = co_await from.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      if (ec)
        break;
      co_await asio::async_write(to, asio::buffer(buf.data(), n), asio::redirect_error(asio::use_awaitable, ec));
      if (ec)
        break;
    }
    t->close();
  }

  void pump() {
    auto ex = local.get_executor();
    asio::co_spawn(ex, copy(shared_from_this(), net, local), asio::detached);
    asio::co_spawn(ex, copy(shared_from_this(), local, net), asio::detached);
  }
};

// A local socket pair: the first end for the caller, the second wrapped for
// the pump; -1 when the system has no descriptors left.
int local_pair(asio::io_context& io, std::optional<local_socket>& pumped) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return -1;
  pumped.emplace(io);
  error_code ec;
  pumped->assign(asio::local::stream_protocol{}, fds[1], ec);
  if (ec) {
    ::close(fds[0]);
    ::close(fds[1]);
    pumped.reset();
    return -1;
  }
  return fds[0];
}

}  // namespace

struct raft_tunnels::impl {
  struct registration {
    std::vector<raft_peer> members;
    accepted_fn accepted;
    accepted_fn copy_requested;  // empty: copies are not served
  };

  std::string self;
  ssl::context server_tls{ssl::context::tls_server};
  ssl::context client_tls{ssl::context::tls_client};
  std::mutex mutex;
  std::map<uint64_t, std::shared_ptr<registration>> groups;
  std::atomic<uint64_t> refused{0};
  uint16_t port = 0;
  // Declared last: destroyed first, with every coroutine frame it holds.
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;

  std::shared_ptr<registration> group(uint64_t id) {
    std::lock_guard lock{mutex};
    auto it = groups.find(id);
    return it == groups.end() ? nullptr : it->second;
  }

  // A refusal is logged as a warning, but for a group not served (yet, or
  // any more: a member starting or stopping its groups), which is routine.
  void refuse(const std::string& why, bool routine = false) {
    refused.fetch_add(1);
    if (routine)
      spdlog::debug("replication: refused a tunnel: {}", why);
    else
      spdlog::warn("replication: refused a tunnel: {}", why);
  }

  // Closes `s` when the setup takes longer than the deadline, unless the
  // watchdog (held by the setting-up coroutine) is gone by then.
  struct watchdog {
    explicit watchdog(tls_stream& s) : stream(&s), timer(s.get_executor(), setup_deadline) {}
    tls_stream* stream;
    asio::steady_timer timer;
  };
  static std::shared_ptr<watchdog> watch(tls_stream& s) {
    auto w = std::make_shared<watchdog>(s);
    w->timer.async_wait([weak = std::weak_ptr<watchdog>(w)](error_code ec) {
      if (auto w = weak.lock(); w && !ec) {
        error_code ignored;
        w->stream->lowest_layer().close(ignored);
      }
    });
    return w;
  }

  // Joins a set-up TLS stream to a new local socket pair: `hand` gets the
  // caller's end, then the tunnel pumps. False when the system has no
  // descriptors left.
  template <class Hand>
  bool join(tls_stream s, Hand&& hand) {
    std::optional<local_socket> pumped;
    int fd = local_pair(io, pumped);
    if (fd < 0)
      return false;
    auto t = std::make_shared<tunnel>(std::move(s), std::move(*pumped));
    hand(fd);
    t->pump();
    return true;
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket s{io};
      co_await acceptor.async_accept(s, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open())
        co_return;
      if (!ec)
        asio::co_spawn(io, admit(tls_stream{std::move(s), server_tls}), asio::detached);
    }
  }

  asio::awaitable<void> admit(tls_stream s) {
    auto deadline = watch(s);
    error_code ec;
    co_await s.async_handshake(ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      refuse("TLS handshake: " + ec.message());
      co_return;
    }
    std::array<unsigned char, 14> head{};
    co_await asio::async_read(s, asio::buffer(head), asio::redirect_error(asio::use_awaitable, ec));
    bool copy = !ec && std::memcmp(head.data(), copy_magic.data(), copy_magic.size()) == 0;
    if (ec || (!copy && std::memcmp(head.data(), magic.data(), magic.size()) != 0)) {
      refuse(ec ? "preamble: " + ec.message() : "preamble: not a HealthTwin replication tunnel");
      co_return;
    }
    uint64_t group_id = 0;
    for (int i = 0; i < 8; ++i)
      group_id |= uint64_t{head[4 + i]} << (8 * i);
    size_t name_size = head[12] | (size_t{head[13]} << 8);
    if (name_size == 0 || name_size > max_name) {
      refuse("preamble: member name of " + std::to_string(name_size) + " bytes");
      co_return;
    }
    std::string name(name_size, '\0');
    co_await asio::async_read(s, asio::buffer(name), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      refuse("preamble: " + ec.message());
      co_return;
    }
    deadline.reset();
    auto reg = group(group_id);
    if (!reg) {
      refuse("group " + std::to_string(group_id) + " is not served here", true);
      co_return;
    }
    auto m = std::find_if(reg->members.begin(), reg->members.end(), [&](auto& p) { return p.name == name; });
    if (m == reg->members.end()) {
      refuse("\"" + quoted(name) + "\" is not a member of group " + std::to_string(group_id));
      co_return;
    }
    if (!certificate_names(s.native_handle(), *m)) {
      refuse("the certificate does not name member " + m->name);
      co_return;
    }
    auto& to = copy ? reg->copy_requested : reg->accepted;
    if (!to) {
      refuse("copies of group " + std::to_string(group_id) + "'s store are not served here", true);
      co_return;
    }
    if (!join(std::move(s), [&](int fd) { to(m->name, fd); }))
      refuse("no local socket pair");
  }

  asio::awaitable<void> dial(uint64_t group_id, raft_peer peer, connected_fn done, bool copy) {
    auto fail = [&](const std::string& why) { done(-1, "tunnel to " + peer.name + ": " + why); };
    error_code ec;
    auto colon = peer.address.rfind(':');
    if (colon == std::string::npos) {
      fail("address " + peer.address + " is not host:port");
      co_return;
    }
    tcp::resolver resolver{io};
    auto endpoints = co_await resolver.async_resolve(host_of(peer.address), peer.address.substr(colon + 1),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      fail("resolve: " + ec.message());
      co_return;
    }
    tls_stream s{io, client_tls};
    auto deadline = watch(s);
    co_await asio::async_connect(s.lowest_layer(), endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec)
      co_await s.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      fail(ec.message());
      co_return;
    }
    if (!certificate_names(s.native_handle(), peer)) {
      fail("its certificate does not name it");
      co_return;
    }
    std::string preamble = copy ? std::string{copy_magic.data(), copy_magic.size()} : std::string{magic.data(), magic.size()};
    for (int i = 0; i < 8; ++i)
      preamble += static_cast<char>((group_id >> (8 * i)) & 0xff);
    preamble += static_cast<char>(self.size() & 0xff);
    preamble += static_cast<char>(self.size() >> 8);
    preamble += self;
    co_await asio::async_write(s, asio::buffer(preamble), asio::redirect_error(asio::use_awaitable, ec));
    deadline.reset();
    if (ec) {
      fail(ec.message());
      co_return;
    }
    if (!join(std::move(s), [&](int fd) { done(fd, {}); }))
      fail("no local socket pair");
  }
};

raft_tunnels::raft_tunnels(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

std::unique_ptr<raft_tunnels> raft_tunnels::open(std::string self, const std::string& listen,
                                                 const tunnel_credentials& tls, std::string& why) {
  if (self.empty() || self.size() > max_name) {
    why = "the member name must have 1 to 253 bytes";
    return nullptr;
  }
  auto i = std::make_unique<impl>();
  i->self = std::move(self);
  i->server_tls = make_context(ssl::context::tls_server, tls, why);
  if (why.empty())
    i->client_tls = make_context(ssl::context::tls_client, tls, why);
  if (!why.empty())
    return nullptr;
  if (auto err = listen_on(i->acceptor, listen); !err.empty()) {
    why = "replication listener " + listen + ": " + err;
    return nullptr;
  }
  i->port = i->acceptor.local_endpoint().port();
  asio::co_spawn(i->io, i->accept_loop(), asio::detached);
  auto* raw = i.get();
  i->thread = std::thread{[raw] {
    auto guard = asio::make_work_guard(raw->io);
    raw->io.run();
  }};
  return std::unique_ptr<raft_tunnels>{new raft_tunnels(std::move(i))};
}

raft_tunnels::~raft_tunnels() {
  impl_->io.stop();
  impl_->thread.join();
}

uint16_t raft_tunnels::port() const { return impl_->port; }

const std::string& raft_tunnels::self() const { return impl_->self; }

uint64_t raft_tunnels::refused() const { return impl_->refused.load(); }

void raft_tunnels::serve(uint64_t group, std::vector<raft_peer> members, accepted_fn accepted) {
  std::lock_guard lock{impl_->mutex};
  auto& reg = impl_->groups[group];
  auto copies = reg ? reg->copy_requested : accepted_fn{};
  reg = std::make_shared<impl::registration>(
      impl::registration{std::move(members), std::move(accepted), std::move(copies)});
}

void raft_tunnels::serve_copies(uint64_t group, accepted_fn requested) {
  std::lock_guard lock{impl_->mutex};
  auto& reg = impl_->groups[group];
  if (!reg)
    return;
  reg = std::make_shared<impl::registration>(impl::registration{reg->members, reg->accepted, std::move(requested)});
}

void raft_tunnels::unserve(uint64_t group) {
  std::lock_guard lock{impl_->mutex};
  impl_->groups.erase(group);
}

void raft_tunnels::connect(uint64_t group, const raft_peer& peer, connected_fn done) {
  asio::co_spawn(impl_->io, impl_->dial(group, peer, std::move(done), false), asio::detached);
}

void raft_tunnels::request_copy(uint64_t group, const raft_peer& peer, connected_fn done) {
  asio::co_spawn(impl_->io, impl_->dial(group, peer, std::move(done), true), asio::detached);
}

}  // namespace healthtwin::services
