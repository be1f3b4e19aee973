#include "services/http/http_listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace healthtwin::services;
using namespace std::chrono_literals;

namespace {

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends a whole GET and returns the status line (empty on failure).
std::string get(uint16_t port, const std::string& path) {
  int fd = connect_to(port);
  if (fd < 0)
    return {};
  auto req = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out.substr(0, out.find("\r\n"));
}

// Whether the server closed `fd` (a read sees the end, not a wait).
bool closed_by_server(int fd) {
  char c;
  auto r = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

class http_listener_test : public ::testing::Test {
protected:
  void start(http_limits limits) {
    http_listener::settings s;
    s.listen = "127.0.0.1:0";
    s.limits = limits;
    auto l = http_listener::start(s, [](const http_request& r) {
      return http_response{r.target == "/ok" ? 200u : 404u, "text/plain", "body\n"};
    });
    ASSERT_TRUE(l);
    listener_ = std::move(*l);
  }
  std::unique_ptr<http_listener> listener_;
};

}  // namespace

TEST_F(http_listener_test, answers_each_request_by_its_path) {
  start({});
  EXPECT_EQ(get(listener_->port(), "/ok"), "HTTP/1.1 200 OK");
  EXPECT_EQ(get(listener_->port(), "/nope"), "HTTP/1.1 404 Not Found");
}

TEST_F(http_listener_test, a_new_connection_evicts_the_oldest_waiting_one_of_its_peer) {
  http_limits limits;
  limits.max_connections_per_peer = 4;
  limits.header_timeout = 10s;
  start(limits);
  std::vector<int> waiting;
  for (int i = 0; i < 8; ++i) {
    waiting.push_back(connect_to(listener_->port()));
    (void)::send(waiting.back(), "GET / HT", 8, MSG_NOSIGNAL);
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(closed_by_server(waiting[static_cast<size_t>(i)])) << i;  // the oldest went
  for (int i = 4; i < 8; ++i)
    EXPECT_FALSE(closed_by_server(waiting[static_cast<size_t>(i)])) << i;
  EXPECT_EQ(get(listener_->port(), "/ok"), "HTTP/1.1 200 OK");  // makes room for itself
  EXPECT_GE(listener_->stats().evicted, 5u);
  EXPECT_LE(listener_->stats().open, 4u);
  for (int fd : waiting)
    ::close(fd);
}

TEST_F(http_listener_test, headers_slower_than_the_deadline_are_cut_off_even_when_trickled) {
  http_limits limits;
  limits.header_timeout = 400ms;
  start(limits);
  int silent = connect_to(listener_->port());
  int trickle = connect_to(listener_->port());
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < 900ms) {
    (void)::send(trickle, "X", 1, MSG_NOSIGNAL);  // a byte every 50 ms: never idle
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(closed_by_server(silent));
  EXPECT_TRUE(closed_by_server(trickle));
  EXPECT_GE(listener_->stats().header_timeouts, 2u);
  ::close(silent);
  ::close(trickle);
}

namespace {

// Reads what the server sends on `fd` until it closes or `want` appears.
std::string read_until(int fd, const std::string& want) {
  std::string out;
  char buf[4096];
  while (out.find(want) == std::string::npos) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

int send_get(uint16_t port, const std::string& path) {
  int fd = connect_to(port);
  auto req = "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  return fd;
}

}  // namespace

TEST(http_listener_async, a_responder_answers_later_from_another_thread_and_a_dropped_one_answers_500) {
  std::vector<std::thread> later;
  http_listener::settings s;
  s.listen = "127.0.0.1:0";
  auto l = http_listener::start_async(s, [&](http_request r, std::shared_ptr<http_responder> out) {
    if (r.target == "/later")
      later.emplace_back([out] {
        std::this_thread::sleep_for(100ms);
        out->reply({200, "text/plain", "late\n", {{"X-Test", "yes"}}});
        out->reply({500, "text/plain", "ignored\n"});  // only the first answer counts
      });
    // "/dropped": the responder goes without an answer
  });
  ASSERT_TRUE(l);
  auto port = (*l)->port();
  int fd = send_get(port, "/later");
  auto answer = read_until(fd, "late\n");
  EXPECT_EQ(answer.substr(0, answer.find("\r\n")), "HTTP/1.1 200 OK");
  EXPECT_NE(answer.find("X-Test: yes"), std::string::npos);
  ::close(fd);
  EXPECT_EQ(get(port, "/dropped"), "HTTP/1.1 500 Internal Server Error");
  for (auto& t : later)
    t.join();
}

TEST(http_listener_async, a_stream_sends_chunks_as_written_and_ends_at_close) {
  std::promise<std::shared_ptr<http_responder>> opened;
  std::atomic<int> gone{0};
  http_listener::settings s;
  s.listen = "127.0.0.1:0";
  auto l = http_listener::start_async(s, [&](http_request, std::shared_ptr<http_responder> out) {
    out->open_stream("text/event-stream", [&] { ++gone; });
    EXPECT_TRUE(out->write("data: one\n\n"));
    opened.set_value(out);
  });
  ASSERT_TRUE(l);
  int fd = send_get((*l)->port(), "/events");
  auto held = opened.get_future().get();
  auto first = read_until(fd, "data: one\n\n");
  EXPECT_NE(first.find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_NE(first.find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_TRUE(held->write("data: two\n\n"));  // arrives while the stream stays open
  EXPECT_NE(read_until(fd, "data: two\n\n").find("data: two"), std::string::npos);
  held->close();
  EXPECT_FALSE(held->write("data: after\n\n"));
  auto rest = read_until(fd, "\r\n0\r\n\r\n");  // the last chunk, then the server closes
  EXPECT_NE(rest.find("0\r\n\r\n"), std::string::npos);
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);
  EXPECT_EQ(gone.load(), 0);  // closed by the handler: not "gone"
  ::close(fd);
  held.reset();
}

TEST(http_listener_async, a_client_too_slow_for_its_stream_is_cut_off_and_the_handler_hears_of_it) {
  std::promise<std::shared_ptr<http_responder>> opened;
  std::atomic<int> gone{0};
  http_listener::settings s;
  s.listen = "127.0.0.1:0";
  s.limits.max_stream_backlog = 256 << 10;
  s.limits.write_timeout = 500ms;
  auto l = http_listener::start_async(s, [&](http_request, std::shared_ptr<http_responder> out) {
    out->open_stream("text/event-stream", [&] { ++gone; });
    opened.set_value(out);
  });
  ASSERT_TRUE(l);
  int fd = send_get((*l)->port(), "/events");  // and never read
  auto held = opened.get_future().get();
  std::string event(16 << 10, 'x');
  bool refused = false;
  for (int i = 0; i < 2000 && !refused; ++i) {  // up to 32 MiB: more than any socket buffers
    refused = !held->write(event);
    if (i % 64 == 0)
      std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(refused);
  for (int i = 0; i < 300 && gone.load() == 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(gone.load(), 1);
  EXPECT_FALSE(held->write("data: more\n\n"));
  held.reset();
  ::close(fd);
}
