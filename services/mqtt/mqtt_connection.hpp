#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "services/mqtt/telemetry_bridge.hpp"

struct mosquitto;

namespace healthtwin::mqtt {

/// How the bridge reaches its broker.
struct broker_settings {
  std::string host = "127.0.0.1";
  int port = 1883;
  bool mqtt5 = true;  ///< MQTT 5, else 3.1.1
  std::string username, password;
  std::string ca_file;    ///< TLS when set: the CA that signed the broker's certificate
  std::string cert_file;  ///< client certificate (brokers that require one)
  std::string key_file;
  int keepalive_s = 30;
  /// How long the broker keeps a subscriber's session (and the messages it
  /// has not acknowledged) after the connection drops; MQTT 5 only, 3.1.1
  /// sessions are kept until cleaned.
  uint32_t session_expiry_s = 7 * 86'400;
};

/// One connection to an MQTT broker (libmosquitto), with its own network
/// thread that reconnects after a drop.
///
/// A subscriber keeps a persistent session under a fixed client id and runs
/// its own network loop: it reads what the broker sent (up to the receive
/// maximum of messages in flight), hands those messages to its handler as
/// one batch, in order, and writes to the socket only after the handler
/// returned. libmosquitto queues a QoS 1 message's PUBACK when it reads the
/// message and, in threaded mode without its own loop thread, writes queued
/// packets only when asked to (mosquitto_loop_write), so no acknowledgement
/// leaves before the handler is done with every message it covers, and
/// what the handler had not finished is delivered again after a crash. A
/// handler that must not acknowledge (stopping) returns false: the
/// connection is cut with the acknowledgements unsent.
///
/// A publisher uses libmosquitto's own network thread.
class mqtt_connection {
public:
  using batch_fn = std::function<bool(std::span<const delivery>)>;

  /// Subscribes to `filters` with QoS 1 (again after every reconnect).
  /// `receive_maximum`: MQTT 5 messages in flight, the largest batch.
  static std::unique_ptr<mqtt_connection> subscriber(const broker_settings& b, std::string client_id,
                                                     std::vector<std::string> filters, batch_fn on_batch,
                                                     int receive_maximum, std::string& error);
  /// A connection that publishes (clean session).
  static std::unique_ptr<mqtt_connection> publisher(const broker_settings& b, std::string client_id,
                                                    std::string& error);

  ~mqtt_connection();
  mqtt_connection(const mqtt_connection&) = delete;
  mqtt_connection& operator=(const mqtt_connection&) = delete;

  /// Publishes with QoS 1; true once the broker acknowledged it with
  /// success within `timeout`.
  bool publish(const std::string& topic, const std::string& payload, bool retain,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));

  bool connected() const;

private:
  mqtt_connection() = default;
  bool start(const broker_settings& b, const std::string& client_id, bool clean, std::string& error);
  void run_subscriber();
  void handle_inbox();

  friend struct callbacks;  // libmosquitto's, in the .cpp

  struct mosquitto* m_ = nullptr;
  std::string client_id_;
  std::vector<std::string> filters_;
  struct received {
    std::string topic, payload, content_type;
  };
  batch_fn handler_;
  std::vector<received> inbox_;  // read, not yet handled (subscriber thread only)
  size_t max_batch_ = 1;
  bool cut_ = false;             // the handler refused: acknowledgements must not leave
  std::atomic<bool> stop_{false};
  std::thread loop_;             // subscriber's network loop
  mutable std::mutex mtx_;
  std::condition_variable published_;
  std::map<int, int> acked_;     // mid -> reason code, until its publisher takes it
  std::set<int> given_up_;       // mids whose publisher stopped waiting
  bool connected_ = false;
};

}  // namespace healthtwin::mqtt
