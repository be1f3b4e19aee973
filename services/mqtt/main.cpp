// healthtwin-mqtt: an MQTT bridge. Subscribes (shared, QoS 1, persistent
// sessions) to healthtwin/{tenant}/devices/+/telemetry on a broker, ingests
// each message into a HealthTwin node over its public gRPC API (a service
// token), and acknowledges it to the broker only after the node stored it
// durably; what cannot be read or stored goes to healthtwin/{tenant}/deadletter
// with the reason. docs/mqtt.md.
//
//   healthtwin-mqtt --broker 127.0.0.1:8883 --broker-ca-file broker-ca.pem
//       --broker-username bridge --broker-password-file bridge.pw
//       --target 127.0.0.1:50051 --tls-ca-file ca.pem --token-file service.jwt --tenant h1
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "services/grpc/client_channel.hpp"
#include "services/http/http_server.hpp"
#include "services/http/process_metrics.hpp"
#include "services/logging/json_log.hpp"
#include "services/mqtt/bridge_metrics.hpp"
#include "services/mqtt/device_commands.hpp"
#include "services/mqtt/mqtt_connection.hpp"
#include "services/mqtt/telemetry_bridge.hpp"

using namespace healthtwin;

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "local";
  return buf;
}

/// host:port; false when malformed.
bool split_address(const std::string& address, std::string& host, int& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return false;
  host = address.substr(0, colon);
  try {
    size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    return used == address.size() - colon - 1 && port > 0 && port < 65536;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"healthtwin-mqtt: MQTT telemetry bridge into a HealthTwin node"};
  std::string broker = "127.0.0.1:1883", mqtt_version = "5", client_id = "healthtwin-bridge-" + host_name();
  std::string share_group = "healthtwin", password_file, node, token_file, node_ca;
  services::http_settings http;
  http.listen.clear();
  std::vector<std::string> tenants;
  mqtt::broker_settings bs;
  bool plaintext = false;
  int connections = 1, ingest_timeout_s = 10, receive_maximum = 1000, desired_poll_s = 10;
  app.add_option("--broker", broker, "the broker's host:port");
  app.add_option("--mqtt-version", mqtt_version, "5 or 3.1.1")->check(CLI::IsMember({"5", "3.1.1"}));
  app.add_option("--broker-username", bs.username, "the bridge's user at the broker");
  app.add_option("--broker-password-file", password_file, "a file holding its password");
  app.add_option("--broker-ca-file", bs.ca_file, "TLS to the broker: the PEM CA that signed its certificate");
  app.add_option("--broker-cert-file", bs.cert_file, "TLS client certificate, for brokers that require one");
  app.add_option("--broker-key-file", bs.key_file, "its private key");
  app.add_option("--client-id", client_id,
                 "client id prefix, stable across restarts and unique per bridge (persistent sessions)");
  app.add_option("--connections", connections,
                 "subscriber connections (more: parallel batches, but a device's messages may be taken out of order)")
      ->check(CLI::Range(1, 64));
  app.add_option("--receive-maximum", receive_maximum, "MQTT 5: messages in flight per connection, the largest batch")
      ->check(CLI::Range(1, 65535));
  app.add_option("--share-group", share_group, "shared subscription group of the bridges (empty: not shared)");
  app.add_option("--session-expiry-s", bs.session_expiry_s,
                 "MQTT 5: how long the broker keeps unacknowledged messages for a bridge that is away");
  app.add_option("--tenant", tenants, "tenant whose devices' telemetry this bridge takes (repeatable)")->required();
  app.add_option("--target", node, "the node's gRPC address host:port")->required();
  app.add_option("--token-file", token_file, "bearer token with the service role")->required();
  app.add_option("--tls-ca-file", node_ca, "PEM CA that signed the node's certificate");
  app.add_flag("--plaintext", plaintext, "reach a node started with --insecure-plaintext");
  app.add_option("--ingest-timeout-s", ingest_timeout_s, "deadline of an ingest call")->check(CLI::Range(1, 120));
  app.add_option("--desired-poll-s", desired_poll_s,
                 "how often the desired configuration of devices that published lately is read for their "
                 "commands topic")
      ->check(CLI::Range(1, 3600));
  app.add_option("--http-listen", http.listen,
                 "host:port of /metrics, /healthz and /readyz (ready: every connection up); empty: none");
  app.add_option("--http-tls-cert-file", http.tls_cert_file, "serve them over HTTPS with this certificate chain");
  app.add_option("--http-tls-key-file", http.tls_key_file, "and its key");
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text, or json: one JSON object per line")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  services::use_log_format(log_format);

  auto usage = [](const char* what) {
    std::fprintf(stderr, "healthtwin-mqtt: %s\n", what);
    return 2;
  };
  for (const auto& t : tenants)
    if (!models::is_valid_id(t))
      return usage("--tenant must be a tenant id ([a-z0-9-], up to 63)");
  if (!split_address(broker, bs.host, bs.port))
    return usage("--broker must be host:port");
  if (!share_group.empty() && share_group.find_first_of("/+#") != std::string::npos)
    return usage("--share-group must not contain '/', '+' or '#'");
  bs.mqtt5 = mqtt_version == "5";
  if (!password_file.empty()) {
    bs.password = services::read_token_file(password_file);
    if (bs.password.empty())
      return usage("--broker-password-file is empty or unreadable");
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  services::channel_settings cs;
  cs.target = node;
  cs.token_file = token_file;  // read again when rotated
  cs.plaintext = plaintext;
  cs.ca_file = node_ca;
  std::string error;
  auto channel = services::make_channel(cs, error);
  if (!channel)
    return usage(error.c_str());
  auto stub = v1::IngestService::NewStub(channel);
  auto registry = v1::RegistryService::NewStub(channel);

  std::string why;
  auto publisher = mqtt::mqtt_connection::publisher(bs, client_id + "-pub", why);
  if (!publisher)
    return usage(why.c_str());

  std::mutex stop_mtx;
  std::condition_variable stop_cv;
  bool stopping = false;
  mqtt::telemetry_bridge::settings settings;
  settings.tenants.insert(tenants.begin(), tenants.end());
  auto timeout = std::chrono::seconds(ingest_timeout_s);
  mqtt::telemetry_bridge bridge{
      settings,
      [&stub, timeout](const v1::IngestRequest& req, v1::IngestResponse& resp) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + timeout);
        return stub->Ingest(&ctx, req, &resp);
      },
      [&publisher](const std::string& topic, const std::string& body) {
        return publisher->publish(topic, body, false);
      },
      [&](std::chrono::milliseconds d) {
        std::unique_lock lk{stop_mtx};
        return !stop_cv.wait_for(lk, d, [&] { return stopping; });
      }};

  auto deadline = [timeout](grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  };
  mqtt::device_commands commands{
      {},
      [&publisher](const std::string& topic, const std::string& body) {
        return publisher->publish(topic, body, true);
      },
      [&registry, deadline](const std::string& name, v1::Device& out) {
        grpc::ClientContext ctx;
        deadline(ctx);
        v1::GetDeviceRequest req;
        req.set_name(name);
        return registry->GetDevice(&ctx, req, &out);
      },
      [] { return models::wall_clock_ms(); }};
  bridge.serve_device_state(
      [&registry, deadline](const v1::ReportDeviceStateRequest& req, v1::Device& out) {
        grpc::ClientContext ctx;
        deadline(ctx);
        return registry->ReportDeviceState(&ctx, req, &out);
      },
      &commands);

  std::vector<std::string> filters;
  for (const auto& t : tenants)
    for (const char* kind : {"telemetry", "reported"}) {
      auto topic = "healthtwin/" + t + "/devices/+/" + kind;
      filters.push_back(share_group.empty() ? topic : "$share/" + share_group + "/" + topic);
    }
  std::vector<std::unique_ptr<mqtt::mqtt_connection>> subscribers;
  for (int i = 0; i < connections; ++i) {
    auto c = mqtt::mqtt_connection::subscriber(
        bs, client_id + "-" + std::to_string(i), filters,
        [&bridge](std::span<const mqtt::delivery> batch) { return bridge.handle(batch); }, receive_maximum, why);
    if (!c)
      return usage(why.c_str());
    subscribers.push_back(std::move(c));
  }
  spdlog::info("mqtt: bridging {} tenant(s) from {} over MQTT {} with {} connection(s)", tenants.size(), broker,
               mqtt_version, connections);

  prometheus::Registry registry_metrics;
  mqtt::bridge_metrics bridge_gauges{registry_metrics, bridge.stats()};
  services::process_metrics process_gauges{registry_metrics};
  std::atomic<bool> ready{false};
  auto connections_up = [&subscribers] {
    uint64_t up = 0;
    for (const auto& c : subscribers)
      up += c->connected() ? 1 : 0;
    return up;
  };
  std::mutex scrape_mtx;
  std::unique_ptr<services::http_server> http_server;
  if (!http.listen.empty()) {
    auto started = services::http_server::start(http, registry_metrics, ready, [&] {
      std::lock_guard lk{scrape_mtx};
      bridge_gauges.refresh(connections_up(), subscribers.size());
      process_gauges.refresh();
    });
    if (!started)
      return usage(caf::to_string(started.error()).c_str());
    http_server = std::move(*started);
    spdlog::info("mqtt: metrics and probes on {}:{}", http.listen.substr(0, http.listen.rfind(':')),
                 http_server->port());
  }

  // Desired configurations changed by operators reach the commands topics.
  std::thread poller{[&] {
    std::unique_lock lk{stop_mtx};
    while (!stop_cv.wait_for(lk, std::chrono::seconds(desired_poll_s), [&] { return stopping; })) {
      lk.unlock();
      commands.poll();
      lk.lock();
    }
  }};

  // Ready while every subscriber connection is up; stop on SIGINT/SIGTERM.
  timespec second{1, 0};
  while (sigtimedwait(&stop_signals, nullptr, &second) < 0)
    ready = connections_up() == subscribers.size();
  ready = false;
  {
    std::lock_guard lk{stop_mtx};
    stopping = true;
  }
  stop_cv.notify_all();
  poller.join();
  http_server.reset();
  subscribers.clear();  // each finishes (or abandons) the message in hand first
  publisher.reset();
  auto& st = bridge.stats();
  spdlog::info("mqtt: stopped; messages stored {} ({} readings new, {} wholly duplicate), states reported {}, "
               "dead-lettered {}, retries {}",
               st.stored.load(), st.readings.load(), st.duplicates.load(), st.states.load(), st.dead_lettered.load(),
               st.retries.load());
  return 0;
}
