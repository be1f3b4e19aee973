#include "services/hl7/mllp_server.hpp"

#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <caf/error.hpp>
#include <caf/sec.hpp>
#include <spdlog/spdlog.h>

#include "services/http/server_socket.hpp"

namespace healthtwin::hl7 {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

constexpr char start_block = 0x0b;
constexpr char end_block = 0x1c;
constexpr char carriage_return = 0x0d;
constexpr size_t kept_prefix = 4096;  // of an oversized message, for its MSH

}  // namespace

struct mllp_server::impl {
  settings s;
  handler h;
  std::atomic<uint64_t> messages{0}, too_large{0}, unterminated{0}, refused{0}, open{0};
  asio::io_context ioc;
  asio::thread_pool workers;
  std::unique_ptr<services::rotating_tls> tls;  // null: plain TCP
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;

  explicit impl(int worker_count) : workers(static_cast<size_t>(std::max(1, worker_count))) {}

  ~impl() {
    beast::error_code ignored;
    acceptor.close(ignored);
    ioc.stop();
    for (auto& t : threads)
      t.join();
    workers.join();
  }
};

namespace {

/// One sender's connection: frames read one at a time, each answered before
/// the next is read. Runs on its own strand.
template <class Stream>
class session final : public std::enable_shared_from_this<session<Stream>> {
public:
  session(mllp_server::impl& owner, Stream&& stream) : owner_(owner), stream_(std::move(stream)) { ++owner_.open; }
  ~session() {
    --owner_.open;
    if (in_frame_)
      ++owner_.unterminated;
  }

  void start() {
    lowest().expires_after(owner_.s.limits.message_timeout);
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      stream_.async_handshake(asio::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec)
          return self->end();
        self->read();
      });
    } else {
      read();
    }
  }

private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void read() {
    if (!in_frame_)
      lowest().expires_after(owner_.s.limits.idle_timeout);
    stream_.async_read_some(asio::buffer(chunk_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      if (ec)
        return self->end();
      self->pending_.append(self->chunk_.data(), n);
      self->consume();
    });
  }

  // Takes frames out of pending_; hands a complete one to the handler (and
  // waits for its answer) or reads more.
  void consume() {
    while (!pending_.empty()) {
      if (!in_frame_) {
        auto sb = pending_.find(start_block);
        if (sb == std::string::npos) {
          pending_.clear();  // bytes outside a frame are ignored
          break;
        }
        pending_.erase(0, sb + 1);
        in_frame_ = true;
        oversize_ = false;
        frame_.clear();
        size_ = 0;
        lowest().expires_after(owner_.s.limits.message_timeout);
        continue;
      }
      // Look for the end block, also across the previous read's last byte.
      size_t eb = pending_.find(end_block);
      if (eb == std::string::npos) {
        take(pending_.size());
        break;
      }
      if (eb + 1 >= pending_.size()) {
        take(eb);  // the end block's CR may come with the next read
        break;
      }
      if (pending_[eb + 1] != carriage_return) {
        take(eb + 1);  // a stray 0x1C inside the message
        continue;
      }
      take(eb);
      pending_.erase(0, 2);
      in_frame_ = false;
      return answer();
    }
    read();
  }

  // Moves n bytes of pending_ into the frame (or counts them past the limit).
  void take(size_t n) {
    size_ += n;
    if (!oversize_ && frame_.size() + n > owner_.s.limits.max_message_bytes) {
      oversize_ = true;
      frame_.resize(std::min(frame_.size(), kept_prefix));
      frame_.append(pending_, 0, std::min(n, kept_prefix - std::min(frame_.size(), kept_prefix)));
    } else if (!oversize_) {
      frame_.append(pending_, 0, n);
    }
    pending_.erase(0, n);
  }

  void answer() {
    auto self = this->shared_from_this();
    bool oversize = oversize_;
    if (oversize)
      ++owner_.too_large;
    else
      ++owner_.messages;
    asio::post(owner_.workers, [self, oversize, frame = std::move(frame_)]() mutable {
      std::string reply;
      try {
        reply = oversize ? self->owner_.h.too_large(std::move(frame), self->owner_.s.limits.max_message_bytes)
                         : self->owner_.h.message(std::move(frame));
      } catch (const std::exception& e) {
        spdlog::error("hl7: a message handler failed: {}", e.what());
      }
      asio::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable {
        if (reply.empty())
          return self->end();
        self->write(std::move(reply));
      });
    });
  }

  void write(std::string reply) {
    out_.clear();
    out_ += start_block;
    out_ += reply;
    out_ += end_block;
    out_ += carriage_return;
    lowest().expires_after(owner_.s.limits.write_timeout);
    asio::async_write(stream_, asio::buffer(out_), [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec)
        return self->end();
      self->consume();
    });
  }

  void end() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }

  mllp_server::impl& owner_;
  Stream stream_;
  std::array<char, 16384> chunk_{};
  std::string pending_, frame_, out_;
  bool in_frame_ = false, oversize_ = false;
  size_t size_ = 0;
};

void accept(mllp_server::impl& im) {
  im.acceptor.async_accept(asio::make_strand(im.ioc), [&im](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted)
      return;
    if (!ec) {
      if (im.open.load() >= im.s.limits.max_connections) {
        ++im.refused;
        socket.close(ec);
      } else if (im.tls) {
        std::make_shared<session<beast::ssl_stream<beast::tcp_stream>>>(
            im, beast::ssl_stream<beast::tcp_stream>{std::move(socket), im.tls->current()})
            ->start();
      } else {
        std::make_shared<session<beast::tcp_stream>>(im, beast::tcp_stream{std::move(socket)})->start();
      }
    } else {
      spdlog::warn("hl7: accept failed: {}", ec.message());
    }
    accept(im);
  });
}

}  // namespace

mllp_server::mllp_server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
mllp_server::~mllp_server() = default;

uint16_t mllp_server::port() const noexcept {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

mllp_stats mllp_server::stats() const {
  return {impl_->messages.load(), impl_->too_large.load(), impl_->unterminated.load(), impl_->refused.load(),
          impl_->open.load()};
}

caf::expected<std::unique_ptr<mllp_server>> mllp_server::start(const settings& s, handler h) {
  auto fail = [&](std::string why) {
    return caf::make_error(caf::sec::cannot_open_port, "cannot listen for MLLP on " + s.listen + ": " + why);
  };
  auto im = std::make_unique<impl>(s.workers);
  im->s = s;
  im->h = std::move(h);
  if (!s.tls_cert_pem.empty()) {
    std::string why;
    im->tls = services::rotating_tls::open(s.tls_cert_pem, s.tls_key_pem, s.tls_cert_file, s.tls_key_file,
                                           s.tls_reload, "hl7", why);
    if (!im->tls)
      return fail(why);
  }
  if (auto why = services::listen_on(im->acceptor, s.listen); !why.empty())
    return fail(why);
  accept(*im);
  for (int i = 0; i < std::max(1, s.io_threads); ++i)
    im->threads.emplace_back([&ioc = im->ioc] { ioc.run(); });
  return std::unique_ptr<mllp_server>(new mllp_server(std::move(im)));
}

}  // namespace healthtwin::hl7
