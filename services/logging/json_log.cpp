#include "services/logging/json_log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <algorithm>
#include <random>

#include <grpc/support/log.h>
#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

namespace healthtwin::services {

namespace {

thread_local std::string request_id;

std::string iso8601(spdlog::log_clock::time_point t) {
  auto since = t.time_since_epoch();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
  std::time_t tt = secs.count();
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// gRPC's own log lines (connection errors and the like) through spdlog.
void grpc_to_spdlog(gpr_log_func_args* args) {
  auto level = args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
               : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                         : spdlog::level::debug;
  spdlog::log(level, "grpc: {}", args->message ? args->message : "");
}

bool id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ':' || c == '-';
}

}  // namespace

void json_log_formatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  nlohmann::ordered_json j;
  j["time"] = iso8601(msg.time);
  auto level = spdlog::level::to_string_view(msg.level);
  j["level"] = std::string{level.data(), level.size()};
  j["thread"] = msg.thread_id;
  j["message"] = std::string{msg.payload.data(), msg.payload.size()};
  if (!request_id.empty())
    j["request_id"] = request_id;
  auto line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  dest.append(line.data(), line.data() + line.size());
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> json_log_formatter::clone() const {
  return std::make_unique<json_log_formatter>();
}

bool use_log_format(std::string_view format) {
  if (format == "text")
    return true;
  if (format != "json")
    return false;
  spdlog::set_formatter(std::make_unique<json_log_formatter>());
  gpr_set_log_function(grpc_to_spdlog);
  return true;
}

std::string_view current_request_id() { return request_id; }

request_scope::request_scope(std::string id) : previous_(std::move(request_id)) { request_id = std::move(id); }

request_scope::~request_scope() { request_id = std::move(previous_); }

std::string request_id_or_new(std::string_view sent) {
  if (!sent.empty() && sent.size() <= 64 && std::all_of(sent.begin(), sent.end(), id_char))
    return std::string{sent};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

const std::string& in_process_secret() {
  static const std::string secret = [] {
    std::random_device rd;
    std::string out;
    for (int i = 0; i < 4; ++i)
      out += fmt::format("{:08x}", rd());
    return out;
  }();
  return secret;
}

}  // namespace healthtwin::services
