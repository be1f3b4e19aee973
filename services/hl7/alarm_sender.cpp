#include "services/hl7/alarm_sender.hpp"

#include <fcntl.h>
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

std::mutex stream_mtx;  // guards alarm_sender::stream_ against its context's end

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
    if (!conn_) {
      std::string why;
      conn_ = mllp_connection::open(s_.receiver, s_.tls, s_.ack_timeout, why);
      if (!conn_) {
        spdlog::warn("hl7 alarms: cannot reach the receiver {}: {}", s_.receiver, why);
        continue;
      }
    }
    auto ack = conn_->send_frame(message) ? conn_->read_frame(s_.ack_timeout, stopping_) : std::nullopt;
    error why;
    auto parsed = ack ? message::parse(*ack, why) : std::nullopt;
    const segment* msa = nullptr;
    if (parsed)
      for (auto& seg : parsed->segments())
        if (seg.id() == "MSA")
          msa = &seg;
    if (!msa) {  // no answer, a closed connection, or no MSA: start afresh
      spdlog::warn("hl7 alarms: no acknowledgement of {} from {}", control_id, s_.receiver);
      conn_.reset();
      continue;
    }
    auto code = parsed->value(*msa, 1);
    if (parsed->value(*msa, 2) != control_id) {
      spdlog::warn("hl7 alarms: the receiver acknowledged another message than {}", control_id);
      conn_.reset();
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
