#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/support/status.h>

#include "healthtwin/v1/ingest.pb.h"
#include "healthtwin/v1/registry.pb.h"

namespace healthtwin::mqtt {

class device_commands;

/// One telemetry message as the broker delivered it.
struct delivery {
  std::string_view topic;
  std::string_view payload;
  std::string_view content_type;  ///< MQTT 5 content type; empty when not said
};

/// What became of a message. `stored` and `dead_lettered` may be
/// acknowledged to the broker; `abandoned` must not be (the bridge is
/// stopping before the node or the broker took it): the broker delivers it
/// again, and its sequence numbers make that harmless.
enum class outcome { stored, dead_lettered, abandoned };

/// Counts by outcome (no patient data).
struct bridge_stats {
  std::atomic<uint64_t> stored{0}, readings{0}, duplicates{0}, dead_lettered{0}, retries{0}, states{0};
};

/// Turns MQTT telemetry messages into ingest calls (docs/mqtt.md). A
/// message is stored whole, or partly with the readings the node refused
/// dead-lettered, or dead-lettered whole when it cannot be read; while the
/// node cannot take it (unavailable, overloaded, a member unreachable, the
/// bridge's token refused) it is retried with backoff, never dropped.
/// Messages taken together (what a connection received at once) go to the
/// node in as few calls as the request limit allows, in their order, so a
/// device's messages are stored in the order it sent them.
/// Blocking; thread-safe (called from each broker connection's thread).
class telemetry_bridge {
public:
  using ingest_fn = std::function<grpc::Status(const v1::IngestRequest&, v1::IngestResponse&)>;
  /// Publishes a dead letter; true once the broker confirmed it (QoS 1).
  using dead_letter_fn = std::function<bool(const std::string& topic, const std::string& body)>;
  /// Waits before a retry; false when the bridge is stopping.
  using wait_fn = std::function<bool(std::chrono::milliseconds)>;

  struct settings {
    std::set<std::string, std::less<>> tenants;
    std::chrono::milliseconds first_backoff{100};
    std::chrono::milliseconds max_backoff{5'000};
  };

  telemetry_bridge(settings s, ingest_fn ingest, dead_letter_fn dead_letter, wait_fn wait);

  using report_fn = std::function<grpc::Status(const v1::ReportDeviceStateRequest&, v1::Device&)>;
  /// Takes devices' reported states (.../reported) to the node's device
  /// shadow with `report`, and tells `commands` (may be null) what the
  /// node answered and which devices published. Without it, reported
  /// states are dead-lettered. Call before handling messages.
  void serve_device_state(report_fn report, device_commands* commands);

  outcome handle(const delivery& m);

  /// Handles `batch` in order; true when every message in it is stored or
  /// dead-lettered (all may be acknowledged), false when the bridge is
  /// stopping first (none may be).
  bool handle(std::span<const delivery> batch);

  const bridge_stats& stats() const noexcept { return stats_; }

  /// healthtwin/{tenant}/deadletter for a topic of a served tenant, else
  /// healthtwin/deadletter.
  std::string dead_letter_topic(std::string_view topic) const;

private:
  struct problem {
    std::string field, reason, description;
  };
  struct pending;  // a message on its way: its readings and what the node said of them
  /// handle(batch), saying which messages were dead-lettered.
  bool run(std::span<const delivery> batch, std::vector<bool>& dead_lettered);
  bool dead_letter(const delivery& m, const std::vector<problem>& problems);
  bool wait_before_retry(int& attempt, std::string_view why);
  /// Sends messages [first, last) of `batch` as one request, retrying; false when stopping.
  bool ingest(std::vector<pending>& batch, size_t first, size_t last);
  /// Sends one reported state, retrying; false when stopping.
  bool report(pending& p);

  settings s_;
  ingest_fn ingest_;
  dead_letter_fn publish_dead_letter_;
  wait_fn wait_;
  report_fn report_;
  device_commands* commands_ = nullptr;
  bridge_stats stats_;
  std::atomic<uint64_t> next_batch_{1};
};

/// Whether an ingest call that failed with `code` may succeed when retried
/// unchanged (the node was unavailable, overloaded, or refused the bridge's
/// credentials: an operator's fix, not the message's fault).
bool retryable(grpc::StatusCode code) noexcept;

/// A final status code's name for a dead letter.
std::string_view grpc_code_name(grpc::StatusCode code) noexcept;

}  // namespace healthtwin::mqtt
