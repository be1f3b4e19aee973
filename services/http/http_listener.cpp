#include "services/http/http_listener.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <caf/error.hpp>
#include <caf/sec.hpp>
#include <spdlog/spdlog.h>

#include "services/http/server_socket.hpp"

namespace healthtwin::services {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

/// What the connection table needs of a session: to close it from outside
/// (an eviction), on the session's own strand.
class session_base {
public:
  virtual ~session_base() = default;
  virtual void evict() = 0;
};

}  // namespace

struct http_listener::impl {
  settings s;
  async_handler h;

  // The connection table (declared before the io_context: sessions still
  // queued in it when it is destroyed unregister here).
  struct connection {
    std::weak_ptr<session_base> session;
    std::string peer;
    bool waiting = true;   // for its request's headers: evictable
    bool evicted = false;  // no longer counted; its session is closing
  };
  std::mutex mtx;
  std::list<connection> connections;  // in accept order: the oldest first
  size_t open = 0;                    // connections not evicted
  std::unordered_map<std::string, size_t> per_peer;
  std::atomic<uint64_t> evicted{0}, refused{0}, header_timeouts{0};

  asio::io_context ioc;
  std::unique_ptr<rotating_tls> tls;  // null: plaintext
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;

  ~impl() {
    beast::error_code ignored;
    acceptor.close(ignored);
    ioc.stop();
    for (auto& t : threads)
      t.join();
  }

  using slot = std::list<connection>::iterator;

  // Admits a connection from `peer`, evicting the oldest waiting one (of
  // that peer at its limit, of anyone at the total limit); nullopt when
  // nothing can make room.
  std::optional<slot> admit(const std::string& peer) {
    std::shared_ptr<session_base> victim;
    std::optional<slot> out;
    {
      std::lock_guard<std::mutex> guard{mtx};
      auto mine = per_peer.find(peer);
      bool peer_full = mine != per_peer.end() && mine->second >= s.limits.max_connections_per_peer;
      bool all_full = open >= s.limits.max_connections;
      if (peer_full || all_full) {
        for (auto& c : connections)
          if (c.waiting && !c.evicted && (!peer_full || c.peer == peer))
            if ((victim = c.session.lock())) {  // else: being destroyed
              uncount(c);
              c.evicted = true;
              break;
            }
        if (!victim) {
          ++refused;
          return std::nullopt;
        }
        ++evicted;
      }
      ++open;
      ++per_peer[peer];
      out = connections.insert(connections.end(), connection{{}, peer, true, false});
    }
    if (victim)
      victim->evict();
    return out;
  }

  void uncount(const connection& c) {  // with mtx held
    --open;
    if (auto p = per_peer.find(c.peer); p != per_peer.end() && --p->second == 0)
      per_peer.erase(p);
  }

  // A session ended: its entry goes (and its count, unless evicted).
  void forget(slot it) {
    std::lock_guard<std::mutex> guard{mtx};
    if (!it->evicted)
      uncount(*it);
    connections.erase(it);
  }

  void set_waiting(slot it, bool waiting) {
    std::lock_guard<std::mutex> guard{mtx};
    it->waiting = waiting;
  }
};

namespace {

/// One connection: (TLS handshake), then requests read within their
/// deadlines and answered in order, until the client closes, a deadline
/// passes, or it is evicted. Runs on its own strand.
template <class Stream>
class session final : public session_base, public std::enable_shared_from_this<session<Stream>> {
public:
  session(http_listener::impl& owner, http_listener::impl::slot slot, Stream&& stream)
      : owner_(owner), slot_(slot), stream_(std::move(stream)) {}

  ~session() override { owner_.forget(slot_); }

  void attach() {
    std::lock_guard<std::mutex> guard{owner_.mtx};
    slot_->session = this->weak_from_this();
  }

  void start() {
    lowest().expires_after(owner_.s.limits.header_timeout);
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec)
                                  return self->end(ec);
                                self->read_request(false);
                              });
    } else {
      read_request(false);
    }
  }

  void evict() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      self->lowest().socket().close(ignored);
    });
  }

private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  // kept_alive: the next request of a connection that was answered before
  // (idle_timeout); otherwise the deadline set at accept still runs.
  void read_request(bool kept_alive) {
    owner_.set_waiting(slot_, true);
    if (kept_alive)
      lowest().expires_after(owner_.s.limits.idle_timeout);
    parser_.emplace();
    parser_->header_limit(owner_.s.limits.max_header_bytes);
    parser_->body_limit(owner_.s.limits.max_body_bytes);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this(), kept_alive](beast::error_code ec, size_t) {
                       if (ec == beast::error::timeout && !kept_alive)
                         ++self->owner_.header_timeouts;
                       if (ec == http::error::body_limit || ec == http::error::header_limit)
                         return self->refuse_oversized(ec == http::error::body_limit);
                       if (ec)
                         return self->end(ec);
                       self->answer();
                     });
  }

  void answer() {
    owner_.set_waiting(slot_, false);
    auto& in = parser_->get();
    http_request req;
    req.method = std::string{in.method_string()};
    req.target = std::string{in.target()};
    for (auto& f : in)
      req.headers.emplace_back(std::string{f.name_string()}, std::string{f.value()});
    req.body = std::move(in.body());
    version_ = in.version();
    keep_alive_ = in.keep_alive();
    head_ = req.method == "HEAD";
    auto r = std::make_shared<responder>(this->shared_from_this());
    try {
      owner_.h(std::move(req), r);
    } catch (const std::exception& e) {
      spdlog::error("http: a request failed: {}", e.what());
      r->reply(http_response{500, "text/plain", "internal error\n"});
    }
  }

  /// The handler's side of one request: posts its answer to the session's
  /// strand. Holds the session until it is dropped.
  class responder final : public http_responder {
  public:
    explicit responder(std::shared_ptr<session> s) : s_(std::move(s)) {}
    ~responder() override {
      if (state_ == state::pending)
        reply(http_response{500, "text/plain", "internal error: no answer\n"});
      else if (state_ == state::streaming)
        close();
    }

    void reply(http_response r) override {
      if (!advance(state::pending, state::replied))
        return;
      asio::post(s_->stream_.get_executor(), [s = s_, r = std::move(r)]() mutable { s->send(std::move(r)); });
    }
    void open_stream(std::string content_type, std::function<void()> on_gone) override {
      if (!advance(state::pending, state::streaming))
        return;
      asio::post(s_->stream_.get_executor(), [s = s_, ct = std::move(content_type), g = std::move(on_gone)]() mutable {
        s->start_stream(std::move(ct), std::move(g));
      });
    }
    bool write(std::string chunk) override {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (state_ != state::streaming)
          return false;
      }
      if (s_->stream_gone_.load())
        return false;
      auto size = chunk.size();
      if (s_->backlog_.fetch_add(size) + size > s_->owner_.s.limits.max_stream_backlog) {
        asio::post(s_->stream_.get_executor(), [s = s_] { s->stream_failed(); });
        s_->stream_gone_ = true;
        return false;
      }
      asio::post(s_->stream_.get_executor(), [s = s_, c = std::move(chunk)]() mutable { s->push(std::move(c)); });
      return true;
    }
    void close() override {
      if (!advance(state::streaming, state::closed))
        return;
      asio::post(s_->stream_.get_executor(), [s = s_] { s->finish_stream(); });
    }

  private:
    enum class state { pending, replied, streaming, closed };
    bool advance(state from, state to) {
      std::lock_guard<std::mutex> guard{mtx_};
      if (state_ != from)
        return false;
      state_ = to;
      return true;
    }
    std::shared_ptr<session> s_;
    std::mutex mtx_;
    state state_ = state::pending;
  };

  // A request over the size limits: told so, then disconnected (the rest
  // of it is not read).
  void refuse_oversized(bool body) {
    keep_alive_ = false;
    head_ = false;
    drain_ = true;
    send(body ? http_response{413, "text/plain", "request body too large\n"}
              : http_response{431, "text/plain", "request headers too large\n"});
  }

  // On the strand: a whole answer.
  void send(http_response r) {
    auto out = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version_);
    out->set(http::field::content_type, r.content_type);
    out->set(http::field::cache_control, "no-store");
    for (auto& [name, value] : r.headers)
      out->set(name, value);
    out->keep_alive(keep_alive_);
    out->body() = std::move(r.body);
    out->prepare_payload();
    if (head_)
      out->body().clear();  // Content-Length stays that of the GET
    lowest().expires_after(owner_.s.limits.write_timeout);
    http::async_write(stream_, *out, [self = this->shared_from_this(), out](beast::error_code ec, size_t) {
      if (!ec && self->drain_)
        return self->drain();
      if (ec || !out->keep_alive())
        return self->end(ec);
      self->read_request(true);
    });
  }

  // After refusing a request mid-way: stop sending, read and drop what the
  // client still sends for a moment, then close — closing with its bytes
  // unread would reset the connection before it read the answer.
  void drain() {
    if (drain_buffer_.empty()) {  // the first time: one second in all
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      lowest().expires_after(std::chrono::seconds(1));
      drain_buffer_.resize(16 << 10);
    }
    lowest().async_read_some(asio::buffer(drain_buffer_), [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec)
        return self->end(ec);
      self->drain();
    });
  }

  // On the strand: a streamed answer's header, chunks and end.
  void start_stream(std::string content_type, std::function<void()> on_gone) {
    on_gone_ = std::move(on_gone);
    stream_head_ = std::make_unique<http::response<http::empty_body>>(http::status::ok, version_);
    stream_head_->set(http::field::content_type, content_type);
    stream_head_->set(http::field::cache_control, "no-store");
    stream_head_->set("X-Content-Type-Options", "nosniff");
    stream_head_->chunked(true);
    stream_head_->keep_alive(false);
    head_writer_ = std::make_unique<http::response_serializer<http::empty_body>>(*stream_head_);
    writing_ = true;
    lowest().expires_after(owner_.s.limits.write_timeout);
    http::async_write_header(stream_, *head_writer_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec)
        return self->stream_failed();
      self->pump();
    });
  }

  void push(std::string chunk) {
    queue_.push_back(std::move(chunk));
    pump();
  }

  void finish_stream() {
    closing_ = true;
    pump();
  }

  void pump() {
    if (writing_ || !stream_head_ || ended_)
      return;
    if (queue_.empty()) {
      if (!closing_)
        return;
      writing_ = true;
      lowest().expires_after(owner_.s.limits.write_timeout);
      asio::async_write(stream_, http::make_chunk_last(), [self = this->shared_from_this()](beast::error_code ec, size_t) {
        self->writing_ = false;
        self->ended_ = true;
        self->stream_gone_ = true;
        self->end(ec);
      });
      return;
    }
    auto chunk = std::make_shared<std::string>(std::move(queue_.front()));
    queue_.pop_front();
    writing_ = true;
    lowest().expires_after(owner_.s.limits.write_timeout);
    asio::async_write(stream_, http::make_chunk(asio::buffer(*chunk)),
                      [self = this->shared_from_this(), chunk](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        self->backlog_ -= chunk->size();
                        if (ec)
                          return self->stream_failed();
                        self->pump();
                      });
  }

  // The client went away or is too slow: the handler hears of it once.
  void stream_failed() {
    stream_gone_ = true;
    if (ended_)
      return;
    ended_ = true;
    queue_.clear();
    if (auto gone = std::exchange(on_gone_, {}))
      gone();
    end({});
  }

  void end(beast::error_code) {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }

  http_listener::impl& owner_;
  http_listener::impl::slot slot_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  bool drain_ = false;
  std::string drain_buffer_;
  // A streamed answer (on the strand, but for the atomics).
  std::unique_ptr<http::response<http::empty_body>> stream_head_;
  std::unique_ptr<http::response_serializer<http::empty_body>> head_writer_;
  std::deque<std::string> queue_;
  std::function<void()> on_gone_;
  bool writing_ = false, closing_ = false, ended_ = false;
  std::atomic<bool> stream_gone_{false};
  std::atomic<size_t> backlog_{0};
};

void accept(http_listener::impl& im) {
  im.acceptor.async_accept(asio::make_strand(im.ioc), [&im](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted)
      return;  // stopping
    if (!ec) {
      beast::error_code peer_ec;
      auto peer = socket.remote_endpoint(peer_ec).address().to_string();
      auto slot = peer_ec ? std::nullopt : im.admit(peer);
      if (!slot) {
        socket.close(peer_ec);
      } else if (im.tls) {
        auto s = std::make_shared<session<beast::ssl_stream<beast::tcp_stream>>>(
            im, *slot, beast::ssl_stream<beast::tcp_stream>{std::move(socket), im.tls->current()});
        s->attach();
        s->start();
      } else {
        auto s = std::make_shared<session<beast::tcp_stream>>(im, *slot, beast::tcp_stream{std::move(socket)});
        s->attach();
        s->start();
      }
    } else {
      // Out of descriptors, say: keep accepting (the limits free some).
      spdlog::warn("http: accept failed: {}", ec.message());
    }
    accept(im);
  });
}

}  // namespace

http_listener::http_listener(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
http_listener::~http_listener() = default;

uint16_t http_listener::port() const noexcept {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

http_listener_stats http_listener::stats() const {
  http_listener_stats out;
  out.evicted = impl_->evicted.load();
  out.refused = impl_->refused.load();
  out.header_timeouts = impl_->header_timeouts.load();
  std::lock_guard<std::mutex> guard{impl_->mtx};
  out.open = impl_->open;
  return out;
}

caf::expected<std::unique_ptr<http_listener>> http_listener::start(const settings& s, handler h) {
  return start_async(s, [h = std::move(h)](http_request req, std::shared_ptr<http_responder> r) {
    r->reply(h(req));
  });
}

caf::expected<std::unique_ptr<http_listener>> http_listener::start_async(const settings& s, async_handler h) {
  auto fail = [&](std::string why) {
    return caf::make_error(caf::sec::cannot_open_port, "cannot listen for HTTP on " + s.listen + ": " + why);
  };
  auto im = std::make_unique<impl>();
  im->s = s;
  im->h = std::move(h);
  if (!s.tls_cert_pem.empty()) {
    std::string why;
    im->tls = rotating_tls::open(s.tls_cert_pem, s.tls_key_pem, s.tls_cert_file, s.tls_key_file, s.tls_reload,
                                 "http", why);
    if (!im->tls)
      return fail(why);
  }
  if (auto why = listen_on(im->acceptor, s.listen); !why.empty())
    return fail(why);
  accept(*im);
  for (int i = 0; i < std::max(1, s.threads); ++i)
    im->threads.emplace_back([&ioc = im->ioc] { ioc.run(); });
  return std::unique_ptr<http_listener>(new http_listener(std::move(im)));
}

}  // namespace healthtwin::services
