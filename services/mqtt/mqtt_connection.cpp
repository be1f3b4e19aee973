#include "services/mqtt/mqtt_connection.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>

#include <cstdlib>
#include <mutex>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <spdlog/spdlog.h>

namespace healthtwin::mqtt {

struct callbacks {
  static void on_connect(struct mosquitto* m, void* self, int rc, int, const mosquitto_property*) {
    auto& c = *static_cast<mqtt_connection*>(self);
    if (rc != 0) {
      spdlog::error("mqtt: {} refused by the broker: {}", c.client_id_, mosquitto_reason_string(rc));
      return;
    }
    {
      std::lock_guard lk{c.mtx_};
      c.connected_ = true;
    }
    for (const auto& f : c.filters_)
      if (int err = mosquitto_subscribe_v5(m, nullptr, f.c_str(), 1, 0, nullptr); err != MOSQ_ERR_SUCCESS)
        spdlog::error("mqtt: {} cannot subscribe to {}: {}", c.client_id_, f, mosquitto_strerror(err));
    spdlog::info("mqtt: {} connected", c.client_id_);
  }

  static void on_disconnect(struct mosquitto*, void* self, int rc, const mosquitto_property*) {
    auto& c = *static_cast<mqtt_connection*>(self);
    std::lock_guard lk{c.mtx_};
    if (c.connected_ && rc != 0)
      spdlog::warn("mqtt: {} lost its connection ({}); reconnecting", c.client_id_, mosquitto_strerror(rc));
    c.connected_ = false;
  }

  static void on_message(struct mosquitto*, void* self, const mosquitto_message* msg,
                         const mosquitto_property* props) {
    auto& c = *static_cast<mqtt_connection*>(self);
    char* content_type = nullptr;
    mosquitto_property_read_string(props, MQTT_PROP_CONTENT_TYPE, &content_type, false);
    c.inbox_.push_back({msg->topic ? msg->topic : "",
                        std::string{static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen)},
                        content_type ? content_type : ""});
    std::free(content_type);
  }

  static void on_publish(struct mosquitto*, void* self, int mid, int reason, const mosquitto_property*) {
    auto& c = *static_cast<mqtt_connection*>(self);
    std::lock_guard lk{c.mtx_};
    if (c.given_up_.erase(mid) == 0)
      c.acked_[mid] = reason;
    c.published_.notify_all();
  }
};

std::unique_ptr<mqtt_connection> mqtt_connection::subscriber(const broker_settings& b, std::string client_id,
                                                             std::vector<std::string> filters, batch_fn on_batch,
                                                             int receive_maximum, std::string& error) {
  std::unique_ptr<mqtt_connection> c{new mqtt_connection};
  c->filters_ = std::move(filters);
  c->handler_ = std::move(on_batch);
  c->max_batch_ = static_cast<size_t>(std::max(1, receive_maximum));
  if (!c->start(b, client_id, false, error))
    return nullptr;
  return c;
}

void mqtt_connection::handle_inbox() {
  if (inbox_.empty())
    return;
  std::vector<delivery> batch;
  batch.reserve(inbox_.size());
  for (const auto& r : inbox_)
    batch.push_back({r.topic, r.payload, r.content_type});
  if (!handler_(batch)) {
    cut_ = true;  // the PUBACKs queued for these messages must never reach the broker
    if (int fd = mosquitto_socket(m_); fd >= 0)
      ::shutdown(fd, SHUT_RDWR);
  }
  inbox_.clear();
}

void mqtt_connection::run_subscriber() {
  // The backoff grows while attempts fail — the broker unreachable, or
  // reached but refusing the login — and starts over once a session is up.
  unsigned backoff_s = 1;
  bool in_session = false;  // the broker accepted the last connection
  while (!stop_ && !cut_) {
    if (connected()) {
      in_session = true;
      backoff_s = 1;
    }
    if (mosquitto_socket(m_) < 0) {
      if (!in_session) {
        for (unsigned i = 0; i < backoff_s * 10 && !stop_; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        backoff_s = std::min(backoff_s * 2, 10u);
      }
      in_session = false;
      if (stop_)
        break;
      if (int rc = mosquitto_reconnect(m_); rc != MOSQ_ERR_SUCCESS) {
        spdlog::warn("mqtt: {} cannot reach the broker ({}); retrying in {} s", client_id_, mosquitto_strerror(rc),
                     backoff_s);
        continue;
      }
    }
    pollfd pfd{mosquitto_socket(m_), static_cast<short>(POLLIN | (mosquitto_want_write(m_) ? POLLOUT : 0)), 0};
    if (::poll(&pfd, 1, 100) > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP))) {
      // Everything the broker has sent by now, up to one batch.
      while (mosquitto_loop_read(m_, 1) == MOSQ_ERR_SUCCESS && inbox_.size() < max_batch_) {
        pollfd more{mosquitto_socket(m_), POLLIN, 0};
        if (more.fd < 0 || ::poll(&more, 1, 0) <= 0)
          break;
      }
    }
    handle_inbox();
    if (cut_ || mosquitto_socket(m_) < 0)
      continue;
    if (mosquitto_want_write(m_))
      mosquitto_loop_write(m_, 1);  // the batch's PUBACKs, pings, subscriptions
    mosquitto_loop_misc(m_);
  }
  if (!cut_ && mosquitto_socket(m_) >= 0) {
    mosquitto_disconnect_v5(m_, 0, nullptr);
    mosquitto_loop_write(m_, 1);
  }
}

std::unique_ptr<mqtt_connection> mqtt_connection::publisher(const broker_settings& b, std::string client_id,
                                                            std::string& error) {
  std::unique_ptr<mqtt_connection> c{new mqtt_connection};
  if (!c->start(b, client_id, true, error))
    return nullptr;
  return c;
}

bool mqtt_connection::start(const broker_settings& b, const std::string& client_id, bool clean, std::string& error) {
  static std::once_flag init;
  std::call_once(init, [] { mosquitto_lib_init(); });
  client_id_ = client_id;
  m_ = mosquitto_new(client_id.c_str(), clean, this);
  if (!m_) {
    error = "cannot create an MQTT client (out of memory or a bad client id)";
    return false;
  }
  auto fail = [&](const std::string& what, int rc) {
    error = what + ": " + mosquitto_strerror(rc);
    return false;
  };
  if (int rc = mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, b.mqtt5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311))
    return fail("protocol version", rc);
  if (!b.username.empty())
    if (int rc = mosquitto_username_pw_set(m_, b.username.c_str(), b.password.empty() ? nullptr : b.password.c_str()))
      return fail("username", rc);
  if (!b.ca_file.empty()) {
    if (int rc = mosquitto_tls_set(m_, b.ca_file.c_str(), nullptr, b.cert_file.empty() ? nullptr : b.cert_file.c_str(),
                                   b.key_file.empty() ? nullptr : b.key_file.c_str(), nullptr))
      return fail("TLS files", rc);
    if (int rc = mosquitto_tls_opts_set(m_, 1, "tlsv1.2", nullptr))
      return fail("TLS options", rc);
  }
  mosquitto_reconnect_delay_set(m_, 1, 10, true);
  if (!clean) {  // a subscriber: its own network loop decides when packets are written
    mosquitto_threaded_set(m_, true);
    if (b.mqtt5)
      mosquitto_int_option(m_, MOSQ_OPT_RECEIVE_MAXIMUM, static_cast<int>(std::min<size_t>(max_batch_, 65535)));
  }
  mosquitto_connect_v5_callback_set(m_, &callbacks::on_connect);
  mosquitto_disconnect_v5_callback_set(m_, &callbacks::on_disconnect);
  mosquitto_message_v5_callback_set(m_, &callbacks::on_message);
  mosquitto_publish_v5_callback_set(m_, &callbacks::on_publish);

  mosquitto_property* props = nullptr;
  if (b.mqtt5 && !clean)
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, b.session_expiry_s);
  int rc = mosquitto_connect_bind_v5(m_, b.host.c_str(), b.port, b.keepalive_s, nullptr, props);
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_ERRNO && rc != MOSQ_ERR_CONN_REFUSED && rc != MOSQ_ERR_NO_CONN)
    return fail("connecting to " + b.host + ":" + std::to_string(b.port), rc);
  if (rc != MOSQ_ERR_SUCCESS)
    spdlog::warn("mqtt: {} cannot reach the broker yet ({}); retrying", client_id_, mosquitto_strerror(rc));
  if (!clean) {
    loop_ = std::thread{[this] { run_subscriber(); }};
    return true;
  }
  if (int err = mosquitto_loop_start(m_))
    return fail("network thread", err);
  return true;
}

mqtt_connection::~mqtt_connection() {
  if (!m_)
    return;
  if (loop_.joinable()) {
    stop_ = true;
    loop_.join();
  } else {
    mosquitto_disconnect_v5(m_, 0, nullptr);
    mosquitto_loop_stop(m_, false);
  }
  mosquitto_destroy(m_);
}

bool mqtt_connection::connected() const {
  std::lock_guard lk{mtx_};
  return connected_;
}

bool mqtt_connection::publish(const std::string& topic, const std::string& payload, bool retain,
                              std::chrono::milliseconds timeout) {
  int mid = 0;
  int rc = mosquitto_publish_v5(m_, &mid, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1, retain,
                                nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    spdlog::warn("mqtt: {} cannot publish: {}", client_id_, mosquitto_strerror(rc));
    return false;
  }
  std::unique_lock lk{mtx_};
  if (!published_.wait_for(lk, timeout, [&] { return acked_.contains(mid); })) {
    given_up_.insert(mid);
    return false;
  }
  int reason = acked_[mid];
  acked_.erase(mid);
  if (reason >= 0x80)
    spdlog::warn("mqtt: {}: the broker refused a publication: {}", client_id_, mosquitto_reason_string(reason));
  return reason < 0x80;
}

}  // namespace healthtwin::mqtt
