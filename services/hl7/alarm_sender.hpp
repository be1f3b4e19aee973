#pragma once
// Alarms out (IHE PCD-04): follows a node's alert stream and delivers each
// event, in order, as an ORU^R40 over MLLP to an alarm manager or
// nurse-call system, resending the same message (same MSH-10) until the
// receiver accepts it (AA/CA); the resume token of the last accepted event
// is kept in a file (written atomically), so that a restart of the gateway
// or the node resumes after it: nothing lost, and a repeat only ever of
// the one message whose ACK was not recorded (the receiver drops it by its
// control id).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/channel.h>

#include "services/hl7/mllp_client.hpp"
#include "services/hl7/pcd04.hpp"

namespace grpc {
class ClientContext;
}

namespace healthtwin::hl7 {

struct alarm_sender_settings {
  std::string receiver;    ///< host:port of the alarm manager's MLLP listener
  mllp_client_tls tls;     ///< TLS to it (plain TCP when its ca_file is empty)
  std::string tenant;      ///< whose alerts
  std::string ward;        ///< only this ward's (empty: all)
  std::string state_file;  ///< the last delivered event's resume token
  pcd04_identity us;
  std::chrono::milliseconds ack_timeout{10'000};     ///< per message sent
  std::chrono::milliseconds retry_at_most{30'000};   ///< the backoff's ceiling
};

/// Counts, read any time.
struct alarm_sender_stats {
  std::atomic<uint64_t> delivered{0};  ///< accepted by the receiver
  std::atomic<uint64_t> resent{0};     ///< sent again after a NACK, timeout or lost connection
  std::atomic<uint64_t> refused{0};    ///< NACKs (AE/AR/CE/CR)
};

class alarm_sender {
public:
  /// Reads the state file (a missing one: start with the events from now
  /// on); nullopt with `error` set when it is unreadable or corrupt.
  static std::unique_ptr<alarm_sender> start(alarm_sender_settings s, std::shared_ptr<grpc::Channel> node,
                                             std::string& error);
  ~alarm_sender();  ///< stops: the message in flight is resent on the next start

  const alarm_sender_stats& stats() const noexcept { return stats_; }
  /// The resume token of the last event the receiver accepted (0: none yet).
  uint64_t delivered_up_to() const noexcept { return cursor_.load(); }

private:
  alarm_sender(alarm_sender_settings s, std::shared_ptr<grpc::Channel> node, std::optional<uint64_t> cursor);
  void run();
  bool deliver(const std::string& message, const std::string& control_id);
  bool persist(uint64_t token, std::string& error) const;
  void pause(std::chrono::milliseconds d);

  alarm_sender_settings s_;
  std::shared_ptr<grpc::Channel> node_;
  std::atomic<uint64_t> cursor_{0};
  bool have_cursor_ = false;
  alarm_sender_stats stats_;
  std::atomic<bool> stopping_{false};
  std::atomic<grpc::ClientContext*> stream_{nullptr};
  std::unique_ptr<mllp_connection> conn_;  // to the receiver (the sender thread's)
  std::thread thread_;
};

}  // namespace healthtwin::hl7
