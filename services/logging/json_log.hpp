#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace healthtwin::services {

/// Log lines as JSON (one object per line, for log collectors):
///   {"time":"2026-12-06T14:32:46.857Z","level":"info","thread":1234,
///    "message":"...","request_id":"..."}
/// `request_id` appears on lines logged while a call is being served on
/// that thread (request_scope). Messages are JSON-escaped; bytes that are
/// not UTF-8 are replaced.
class json_log_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

/// Sets the log format of the default logger: "text" (spdlog's pattern) or
/// "json" (json_log_formatter). With "json", gRPC's own log lines go
/// through it too. False for another format.
bool use_log_format(std::string_view format);

/// The request id of the call this thread is serving; empty when none.
std::string_view current_request_id();

/// While alive, lines this thread logs carry `id` (the previous id comes
/// back after it).
class request_scope {
public:
  explicit request_scope(std::string id);
  ~request_scope();
  request_scope(const request_scope&) = delete;
  request_scope& operator=(const request_scope&) = delete;

private:
  std::string previous_;
};

/// A caller's request id (the `x-request-id` header) when it is 1 to 64
/// characters of [A-Za-z0-9._:-]; otherwise a new random one (16 hex
/// digits). Never longer than 64 bytes, never anything a log line or a
/// header could be broken with.
std::string request_id_or_new(std::string_view sent);

inline constexpr std::string_view request_id_header = "x-request-id";
/// The metadata an in-process composite export (the FHIR export) adds to
/// the API calls it makes on a caller's behalf: "<what> <in_process_secret()>";
/// the audit entry names <what>. A value without the secret is ignored.
inline constexpr std::string_view composed_by_header = "healthtwin-composed-by";

/// 32 random hex digits drawn once per process: what only calls made from
/// inside this process can know.
const std::string& in_process_secret();

}  // namespace healthtwin::services
