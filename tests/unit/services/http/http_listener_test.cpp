#include "services/http/http_listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
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
