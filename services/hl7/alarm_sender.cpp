#include "services/hl7/alarm_sender.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "actors/models/wall_clock.hpp"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "services/hl7/hl7_message.hpp"

namespace healthtwin::hl7 {

namespace {

constexpr char start_block = 0x0b, end_block = 0x1c, carriage_return = 0x0d;
constexpr size_t max_ack_bytes = 64 << 10;

std::mutex stream_mtx;  // guards alarm_sender::stream_ against its context's end

// A TCP connection to host:port within `timeout`; -1 on failure (why in `error`).
int connect_to(const std::string& address, std::chrono::milliseconds timeout, std::string& error) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    error = "not host:port";
    return -1;
  }
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int rc = getaddrinfo(address.substr(0, colon).c_str(), address.substr(colon + 1).c_str(), &hints, &found);
      rc != 0) {
    error = gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (auto* ai = found; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect() and writes
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// One MLLP frame's content within `timeout`; nullopt on timeout, close,
// garbage or `stopping`.
std::optional<std::string> read_frame(int fd, std::chrono::milliseconds timeout, const std::atomic<bool>& stopping) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string in;
  char buf[4096];
  for (;;) {
    if (auto s = in.find(start_block); s != std::string::npos)
      if (auto e = in.find(std::string{end_block} + carriage_return, s); e != std::string::npos)
        return in.substr(s + 1, e - s - 1);
    if (in.size() > max_ack_bytes)
      return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || stopping)
      return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 200)));
    if (ready < 0)
      return std::nullopt;
    if (ready == 0)
      continue;
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      return std::nullopt;
    in.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

std::unique_ptr<alarm_sender> alarm_sender::start(alarm_sender_settings s, std::shared_ptr<grpc::Channel> node,
                                                  std::string& error) {
  std::optional<uint64_t> cursor;
  if (std::ifstream in{s.state_file}; in) {
    uint64_t token = 0;
    std::string rest;
    if (!(in >> token) || (in >> rest)) {
      error = s.state_file + ": not a resume token (a single number); remove it to start from now";
      return nullptr;
    }
    cursor = token;
  }
  return std::unique_ptr<alarm_sender>(new alarm_sender(std::move(s), std::move(node), cursor));
}

alarm_sender::alarm_sender(alarm_sender_settings s, std::shared_ptr<grpc::Channel> node,
                           std::optional<uint64_t> cursor)
    : s_(std::move(s)), node_(std::move(node)) {
  have_cursor_ = cursor.has_value();
  cursor_ = cursor.value_or(0);
  thread_ = std::thread([this] { run(); });
}

alarm_sender::~alarm_sender() {
  stopping_ = true;
  {
    std::lock_guard<std::mutex> guard{stream_mtx};
    if (auto* ctx = stream_.load())
      ctx->TryCancel();
  }
  thread_.join();
  if (fd_ >= 0)
    ::close(fd_);
}

void alarm_sender::pause(std::chrono::milliseconds d) {
  for (auto until = std::chrono::steady_clock::now() + d; !stopping_ && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

bool alarm_sender::persist(uint64_t token, std::string& error) const {
  auto tmp = s_.state_file + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  auto text = std::to_string(token) + "\n";
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  if (fd >= 0)
    ::close(fd);
  ok = ok && ::rename(tmp.c_str(), s_.state_file.c_str()) == 0;
  if (ok) {  // the rename itself, durable
    auto dir = s_.state_file.substr(0, std::max<size_t>(1, s_.state_file.rfind('/')));
    if (int d = ::open(s_.state_file.find('/') == std::string::npos ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
        d >= 0) {
      ::fsync(d);
      ::close(d);
    }
  } else {
    error = s_.state_file + ": " + std::strerror(errno);
  }
  return ok;
}

// Sends `message` until the receiver accepts it; false only when stopping.
bool alarm_sender::deliver(const std::string& message, const std::string& control_id) {
  auto backoff = std::chrono::milliseconds(250);
  for (int attempt = 0; !stopping_; ++attempt) {
    if (attempt > 0) {
      ++stats_.resent;
      pause(backoff);
      backoff = std::min(backoff * 2, s_.retry_at_most);
      if (stopping_)
        return false;
    }
    if (fd_ < 0) {
      std::string why;
      fd_ = connect_to(s_.receiver, s_.ack_timeout, why);
      if (fd_ < 0) {
        spdlog::warn("hl7 alarms: cannot reach the receiver {}: {}", s_.receiver, why);
        continue;
      }
    }
    auto ack = send_all(fd_, std::string{start_block} + message + end_block + carriage_return)
                   ? read_frame(fd_, s_.ack_timeout, stopping_)
                   : std::nullopt;
    error why;
    auto parsed = ack ? message::parse(*ack, why) : std::nullopt;
    const segment* msa = nullptr;
    if (parsed)
      for (auto& seg : parsed->segments())
        if (seg.id() == "MSA")
          msa = &seg;
    if (!msa) {  // no answer, a closed connection, or no MSA: start afresh
      spdlog::warn("hl7 alarms: no acknowledgement of {} from {}", control_id, s_.receiver);
      ::close(fd_);
      fd_ = -1;
      continue;
    }
    auto code = parsed->value(*msa, 1);
    if (parsed->value(*msa, 2) != control_id) {
      spdlog::warn("hl7 alarms: the receiver acknowledged another message than {}", control_id);
      ::close(fd_);
      fd_ = -1;
      continue;
    }
    if (code == "AA" || code == "CA")
      return true;
    ++stats_.refused;
    spdlog::warn("hl7 alarms: the receiver refused {} ({}): sending it again", control_id, code);
  }
  return false;
}

void alarm_sender::run() {
  auto stub = v1::AlertService::NewStub(node_);
  auto backoff = std::chrono::milliseconds(500);
  while (!stopping_) {
    grpc::ClientContext ctx;
    {
      std::lock_guard<std::mutex> guard{stream_mtx};
      if (stopping_)
        break;
      stream_ = &ctx;
    }
    v1::StreamAlertsRequest req;
    req.set_parent("tenants/" + s_.tenant);
    req.set_ward(s_.ward);
    if (have_cursor_)
      req.set_resume_after(cursor_);
    auto reader = stub->StreamAlerts(&ctx, req);
    reader->WaitForInitialMetadata();  // the node marks the stream open once subscribed
    if (ctx.GetServerInitialMetadata().count("healthtwin-stream"))
      spdlog::info("hl7 alarms: following the alert stream{}", have_cursor_ ? fmt::format(" after event {}", cursor_.load())
                                                                            : std::string{" from now"});
    v1::AlertEvent e;
    bool got = false;
    while (!stopping_ && reader->Read(&e)) {
      got = true;
      auto id = pcd04_control_id(e.resume_token());
      if (!deliver(report_alert(e, s_.us, models::wall_clock_ms()), id))
        break;  // stopping: this event goes again next time
      std::string error;
      while (!persist(e.resume_token(), error) && !stopping_) {
        spdlog::error("hl7 alarms: cannot record delivery: {}", error);
        pause(std::chrono::seconds(1));
      }
      cursor_ = e.resume_token();
      have_cursor_ = true;
      ++stats_.delivered;
    }
    {
      std::lock_guard<std::mutex> guard{stream_mtx};
      stream_ = nullptr;
    }
    ctx.TryCancel();
    auto st = reader->Finish();
    if (stopping_)
      break;
    if (!st.ok())
      spdlog::warn("hl7 alarms: the alert stream ended: {}; resuming after {}", st.error_message(), cursor_.load());
    if (got)
      backoff = std::chrono::milliseconds(500);
    pause(backoff);
    backoff = std::min(backoff * 2, s_.retry_at_most);
  }
}

}  // namespace healthtwin::hl7
