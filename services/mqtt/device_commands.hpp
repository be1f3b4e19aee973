#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include <grpcpp/support/status.h>

#include "healthtwin/v1/registry.pb.h"

namespace healthtwin::mqtt {

/// Keeps each active device's commands topic current: the desired side of
/// its shadow (settings and firmware target, with the desired version) is
/// published retained to healthtwin/{tenant}/devices/{device}/commands as
/// proto3 JSON of a DeviceConfig, whenever the node has a newer version than
/// the one last published (docs/mqtt.md). The node's view arrives with
/// every reported state and is asked for on a poll, for the devices that
/// published lately. Thread-safe.
class device_commands {
public:
  /// Publishes retained with QoS 1; true once the broker confirmed it.
  using publish_fn = std::function<bool(const std::string& topic, const std::string& body)>;
  using get_device_fn = std::function<grpc::Status(const std::string& name, v1::Device& out)>;
  using clock_fn = std::function<int64_t()>;  // ms

  struct settings {
    /// A device quiet for longer is no longer polled (its retained
    /// commands stay at the broker).
    std::chrono::milliseconds forget_after{std::chrono::hours(1)};
  };

  device_commands(settings s, publish_fn publish, get_device_fn get_device, clock_fn now_ms);

  /// A device published (telemetry or its state): keep its commands current.
  void seen(const std::string& device_name);

  /// The node's view of a device: its desired configuration is published
  /// when newer than what was published; false when that publication failed
  /// (the next poll tries again).
  bool offer(const v1::Device& d);

  /// Asks the node for each device seen within `forget_after`, publishing
  /// what changed, and forgets the others; the number published.
  size_t poll();

  /// The body published for a desired configuration.
  static std::string body(const v1::DeviceConfig& desired);

private:
  struct entry {
    int64_t last_seen_ms = 0;
    bool published = false;
    uint64_t version = 0;  // desired version last published
  };

  settings s_;
  publish_fn publish_;
  get_device_fn get_device_;
  clock_fn now_ms_;
  std::mutex mtx_;
  std::map<std::string, entry, std::less<>> devices_;
};

}  // namespace healthtwin::mqtt
