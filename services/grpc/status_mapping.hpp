#pragma once
// Private to services/grpc: the one table from our errors to gRPC statuses.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <grpcpp/support/status.h>

namespace prometheus {
class Registry;
}

namespace healthtwin::services {

struct field_violation {
  std::string field;
  std::string description;
};

/// Bounds on what an error carries back, so that it stays within a
/// client's metadata limit (8 KiB by default) whatever was sent: a reply
/// that exceeds it reaches the client as RESOURCE_EXHAUSTED or a dropped
/// call instead of the code it was. Input is quoted with models::quoted.
inline constexpr size_t max_violations = 16;
inline constexpr size_t max_field_bytes = 128;
inline constexpr size_t max_description_bytes = 256;
inline constexpr size_t max_message_bytes = 1024;
inline constexpr size_t max_details_bytes = 4096;

/// INVALID_ARGUMENT with a google.rpc.BadRequest naming each field (the
/// first max_violations; each field and description cut to its bound).
grpc::Status invalid_argument(const std::vector<field_violation>& violations);
grpc::Status invalid_argument(std::string field, std::string description);

/// Why a call was refused for now (the caller may come back): the reason
/// label of healthtwin_api_refusals_total.
enum class refusal : uint8_t {
  not_ready,                   ///< recovering after a start
  shutting_down,               ///< the node is stopping
  ingest_queue_full,           ///< the sequencer's queue is full
  rate_limit_calls,            ///< the principal's calls per second
  rate_limit_readings,         ///< the principal's readings per second
  rate_limit_device_readings,  ///< a device token's readings per second
  storage_full,                ///< the disk is full
  storage_failing,             ///< a storage write failed
  persist_failed,              ///< an alert change could not be persisted
  subscriber_behind,           ///< an alert stream fell too far behind
  shard_moving,                ///< the shard is being handed over
  owner_unreachable,           ///< a cluster member did not answer
  membership_change,           ///< a step of ChangeMembers failed
  watch_limit,                 ///< too many open twin watches (the caller's, or the node's)
};
inline constexpr size_t refusals = 14;

/// "not_ready", "ingest_queue_full", ...
std::string_view refusal_name(refusal r);

/// Counts every refusal made by retry_later() in `metrics` from now on, as
/// healthtwin_api_refusals_total{reason,code}. Call once per process (the
/// node's registry); before it, refusals are not counted.
void count_refusals_in(prometheus::Registry& metrics);

/// A status with google.rpc.RetryInfo (UNAVAILABLE, RESOURCE_EXHAUSTED),
/// counted by its reason.
grpc::Status retry_later(grpc::StatusCode code, refusal why, std::string message,
                         std::chrono::milliseconds delay);

/// FAILED_PRECONDITION for a call about a twin (`what`: "this patient")
/// homed in another region, which this node does not forward to: names the
/// region and its endpoint, in the message and in a google.rpc.ErrorInfo
/// (reason HOMED_ELSEWHERE, metadata home_region and endpoint).
grpc::Status homed_elsewhere(const std::string& what, const std::string& region,
                             const std::string& endpoint);

/// Maps any error from storage, the sequencer, the hub or CAF to a status.
/// `what` names the resource or operation for NOT_FOUND and the like.
grpc::Status to_status(const caf::error& e, std::string_view what = {});

/// `st` with its message cut to max_message_bytes and details over
/// max_details_bytes dropped: the last bound before any status leaves.
grpc::Status bounded(const grpc::Status& st);

/// UNAVAILABLE while the node is recovering.
grpc::Status not_ready();

/// "OK", "NOT_FOUND", ...: a status code as the audit log records outcomes.
std::string code_name(grpc::StatusCode code);

/// What the caller gets for `outcome` when writing its audit entry ended
/// with `audit_error`: the outcome itself if the entry is written or the
/// call failed anyway; otherwise the store's error (the answer is withheld).
grpc::Status audit_outcome(const grpc::Status& outcome, const caf::error& audit_error);

}  // namespace healthtwin::services
