#include "services/grpc/status_mapping.hpp"

#include <array>
#include <atomic>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <caf/sec.hpp>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/models/quoted.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "storage/errc.hpp"

namespace healthtwin::services {

namespace {

grpc::Status with_details(grpc::StatusCode code, const std::string& message,
                          const google::protobuf::Message& detail) {
  google::rpc::Status st;
  st.set_code(static_cast<int>(code));
  st.set_message(message);
  st.add_details()->PackFrom(detail);
  return grpc::Status(code, message, st.SerializeAsString());
}

}  // namespace

grpc::Status invalid_argument(const std::vector<field_violation>& violations) {
  google::rpc::BadRequest br;
  std::string message;
  for (auto& v : violations) {
    if (br.field_violations_size() == max_violations)
      break;
    auto* f = br.add_field_violations();
    f->set_field(models::bounded(v.field, max_field_bytes));
    f->set_description(models::bounded(v.description, max_description_bytes));
    if (message.empty())
      message = f->field() + ": " + f->description();
  }
  if (violations.size() > 1)
    message += " (and " + std::to_string(violations.size() - 1) + " more)";
  return with_details(grpc::StatusCode::INVALID_ARGUMENT, message, br);
}

grpc::Status invalid_argument(std::string field, std::string description) {
  return invalid_argument(std::vector<field_violation>{{std::move(field), std::move(description)}});
}

namespace {

// healthtwin_api_refusals_total by [refusal][code == RESOURCE_EXHAUSTED]; set
// once by count_refusals_in().
std::array<std::array<std::atomic<prometheus::Counter*>, 2>, refusals> refusal_counters{};

}  // namespace

std::string_view refusal_name(refusal r) {
  static constexpr std::array<std::string_view, refusals> names{
      "not_ready",       "shutting_down",     "ingest_queue_full", "rate_limit_calls",
      "rate_limit_readings", "rate_limit_device_readings", "storage_full", "storage_failing",
      "persist_failed",  "subscriber_behind", "shard_moving",      "owner_unreachable",
      "membership_change", "watch_limit"};
  auto i = static_cast<size_t>(r);
  return i < names.size() ? names[i] : "unknown";
}

void count_refusals_in(prometheus::Registry& metrics) {
  auto& family = prometheus::BuildCounter()
                     .Name("healthtwin_api_refusals_total")
                     .Help("Calls refused for now (RetryInfo says when to come back), by reason and code")
                     .Register(metrics);
  for (size_t r = 0; r < refusals; ++r)
    for (size_t exhausted = 0; exhausted < 2; ++exhausted)
      refusal_counters[r][exhausted].store(
          &family.Add({{"reason", std::string{refusal_name(static_cast<refusal>(r))}},
                       {"code", exhausted ? "RESOURCE_EXHAUSTED" : "UNAVAILABLE"}}),
          std::memory_order_release);
}

grpc::Status retry_later(grpc::StatusCode code, refusal why, std::string message,
                         std::chrono::milliseconds delay) {
  auto r = static_cast<size_t>(why);
  if (r < refusals)
    if (auto* c = refusal_counters[r][code == grpc::StatusCode::RESOURCE_EXHAUSTED].load(
            std::memory_order_acquire))
      c->Increment();
  google::rpc::RetryInfo ri;
  ri.mutable_retry_delay()->set_seconds(delay.count() / 1000);
  ri.mutable_retry_delay()->set_nanos(static_cast<int32_t>((delay.count() % 1000) * 1'000'000));
  return with_details(code, message, ri);
}

grpc::Status homed_elsewhere(const std::string& what, const std::string& region,
                             const std::string& endpoint) {
  google::rpc::ErrorInfo info;
  info.set_reason("HOMED_ELSEWHERE");
  info.set_domain("healthtwin.io");
  (*info.mutable_metadata())["home_region"] = region;
  if (!endpoint.empty())
    (*info.mutable_metadata())["endpoint"] = endpoint;
  return with_details(grpc::StatusCode::FAILED_PRECONDITION,
                      what + " is homed in region " + region + "; send its calls there" +
                          (endpoint.empty() ? "" : " (" + endpoint + ")"),
                      info);
}

grpc::Status bounded(const grpc::Status& st) {
  if (st.error_message().size() <= max_message_bytes && st.error_details().size() <= max_details_bytes)
    return st;
  // Details this large were not built by invalid_argument or retry_later:
  // drop them rather than lose the code to the client's metadata limit.
  return grpc::Status(st.error_code(), models::bounded(st.error_message(), max_message_bytes),
                      st.error_details().size() <= max_details_bytes ? st.error_details()
                                                                     : std::string{});
}

grpc::Status not_ready() {
  return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::not_ready, "node is recovering; retry shortly",
                     std::chrono::milliseconds(500));
}

grpc::Status to_status(const caf::error& e, std::string_view what) {
  using grpc::StatusCode;
  std::string subject{what.empty() ? "resource" : what};
  if (!e)
    return grpc::Status::OK;
  if (e.category() == caf::atom("ingest")) {
    switch (static_cast<actors::ingest_errc>(e.code())) {
      case actors::ingest_errc::overloaded:
        return retry_later(StatusCode::RESOURCE_EXHAUSTED, refusal::ingest_queue_full, "ingest queue is full",
                           std::chrono::milliseconds(100));
      case actors::ingest_errc::shutting_down:
        return retry_later(StatusCode::UNAVAILABLE, refusal::shutting_down, "node is shutting down",
                           std::chrono::milliseconds(1000));
      case actors::ingest_errc::already_exists:
        return grpc::Status(StatusCode::ALREADY_EXISTS, subject + " already exists");
      case actors::ingest_errc::not_found: {
        std::string which = subject;
        if (!e.context().empty() && e.context().match_elements<std::string>())
          which = e.context().get_as<std::string>(0);
        return grpc::Status(StatusCode::NOT_FOUND, which + " not found");
      }
      case actors::ingest_errc::moving: {
        std::string msg = "the shard is moving to another member";
        if (!e.context().empty() && e.context().match_elements<std::string>())
          msg = e.context().get_as<std::string>(0);
        return retry_later(StatusCode::UNAVAILABLE, refusal::shard_moving, msg + "; retry",
                           std::chrono::milliseconds(500));
      }
      case actors::ingest_errc::aborted: {
        std::string msg = "aborted";
        if (!e.context().empty() && e.context().match_elements<std::string>())
          msg = e.context().get_as<std::string>(0);
        return grpc::Status(StatusCode::ABORTED, msg);
      }
      case actors::ingest_errc::failed_precondition:
      case actors::ingest_errc::invalid_argument: {
        std::string msg = to_string(static_cast<actors::ingest_errc>(e.code()));
        if (!e.context().empty() && e.context().match_elements<std::string>())
          msg = e.context().get_as<std::string>(0);
        return grpc::Status(e.code() == static_cast<uint8_t>(actors::ingest_errc::invalid_argument)
                                ? StatusCode::INVALID_ARGUMENT
                                : StatusCode::FAILED_PRECONDITION,
                            msg);
      }
    }
  }
  if (e.category() == caf::atom("alerts")) {
    switch (static_cast<actors::alert_errc>(e.code())) {
      case actors::alert_errc::not_found:
        return grpc::Status(StatusCode::NOT_FOUND, subject + " not found");
      case actors::alert_errc::already_resolved:
        return grpc::Status(StatusCode::FAILED_PRECONDITION, subject + " is already resolved");
      case actors::alert_errc::persist_failed:
        return retry_later(StatusCode::UNAVAILABLE, refusal::persist_failed, "could not persist the change",
                           std::chrono::milliseconds(1000));
      case actors::alert_errc::invalid_silence:
        return grpc::Status(StatusCode::INVALID_ARGUMENT, "duration is out of range");
    }
  }
  if (e.category() == caf::atom("storage")) {
    // Never leak storage details (paths) to clients; the node logs them.
    switch (static_cast<storage::errc>(e.code())) {
      case storage::errc::no_space:
        return retry_later(StatusCode::RESOURCE_EXHAUSTED, refusal::storage_full, "node storage is full",
                           std::chrono::milliseconds(5000));
      case storage::errc::erased:
        return grpc::Status(StatusCode::NOT_FOUND, "the patient was erased");
      case storage::errc::no_quorum:
        return retry_later(StatusCode::UNAVAILABLE, refusal::storage_failing,
                           "the replicas have no quorum; nothing was acknowledged, resend", std::chrono::milliseconds(500));
      default:
        return retry_later(StatusCode::UNAVAILABLE, refusal::storage_failing, "node storage is failing",
                           std::chrono::milliseconds(1000));
    }
  }
  if (e == caf::sec::request_timeout)
    return grpc::Status(StatusCode::DEADLINE_EXCEEDED, "the twin did not answer in time");
  return grpc::Status(StatusCode::INTERNAL, "internal error");
}

std::string code_name(grpc::StatusCode code) {
  static constexpr std::array<const char*, 17> names{
      "OK",          "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS",   "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",        "UNAVAILABLE",      "DATA_LOSS",
      "UNAUTHENTICATED"};
  auto i = static_cast<size_t>(code);
  return i < names.size() ? names[i] : "UNKNOWN";
}

grpc::Status audit_outcome(const grpc::Status& outcome, const caf::error& audit_error) {
  if (!audit_error)
    return bounded(outcome);
  spdlog::error("audit: recording a call failed: {}", storage::describe(audit_error));
  if (!outcome.ok())
    return bounded(outcome);  // a refusal discloses nothing
  // Nothing is disclosed without its record: the answer is withheld, with
  // the store's reason (e.g. RESOURCE_EXHAUSTED with retry info on a full disk).
  auto st = to_status(audit_error);
  return grpc::Status(st.error_code(),
                      "the call's audit entry could not be written, so its answer is withheld "
                      "(a change it made may have taken effect): " + st.error_message(),
                      st.error_details());
}

}  // namespace healthtwin::services
