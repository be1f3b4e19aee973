// Load for the MQTT bridge: K publisher connections send M telemetry
// messages each (QoS 1, B readings per message: frames of 6 vitals of one
// bedside monitor, protobuf), D devices in all; prints readings/s end to end
// — from the first publication until the node reports every reading stored
// (the sum of the device twins' readings_accepted). --until broker instead
// counts what a plain QoS 1 subscriber receives: the broker's own ceiling
// with nothing behind it. --grpc sends the same payloads to the node's
// unary Ingest directly (K concurrent callers): the path without broker and
// bridge. Registers its devices first (--target).
//
//   build/bench/mqttload --broker 127.0.0.1:1883 --target 127.0.0.1:50051 --plaintext
//       --token-file t --tenant t --connections 4 --messages 250 --readings 1000
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <mosquitto.h>

#include "bench/support/register_monitor.hpp"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "healthtwin/v1/telemetry.pb.h"
#include "healthtwin/v1/twin.grpc.pb.h"
#include "services/grpc/client_channel.hpp"

using namespace healthtwin;
using clock_type = std::chrono::steady_clock;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr v1::Metric vitals[] = {v1::METRIC_HEART_RATE,   v1::METRIC_SPO2,        v1::METRIC_RESPIRATION_RATE,
                                 v1::METRIC_TEMPERATURE, v1::METRIC_SYSTOLIC_BP, v1::METRIC_DIASTOLIC_BP};
constexpr double normal[] = {72, 97, 15, 36.8, 121, 78};

/// Message `i` of a device: readings i*B+1 .. (i+1)*B, one frame of six a second.
v1::TelemetryPayload payload(int64_t t0, int i, int b) {
  v1::TelemetryPayload p;
  p.set_version(1);
  for (int k = 0; k < b; ++k) {
    int64_t n = static_cast<int64_t>(i) * b + k;
    p.add_sequence(static_cast<uint64_t>(n + 1));
    p.add_time_ms(t0 + (n / 6) * 1000);
    p.add_metric(vitals[n % 6]);
    p.add_value(normal[n % 6] + static_cast<double>(n % 3));
  }
  return p;
}

struct counter {
  std::mutex m;
  std::condition_variable cv;
  uint64_t n = 0;
  void add() {
    std::lock_guard lk{m};
    ++n;
    cv.notify_all();
  }
};

bool split(const std::string& a, std::string& host, int& port) {
  auto c = a.rfind(':');
  if (c == std::string::npos)
    return false;
  host = a.substr(0, c);
  port = std::atoi(a.c_str() + c + 1);
  return port > 0;
}

mosquitto* connect(const std::string& host, int port, const std::string& id, void* obj) {
  auto* m = mosquitto_new(id.c_str(), true, obj);
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 100);
  if (mosquitto_connect(m, host.c_str(), port, 60) != MOSQ_ERR_SUCCESS || mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "mqttload: cannot connect to the broker\n");
    std::exit(1);
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mqttload: telemetry through an MQTT broker and the bridge"};
  std::string broker = "127.0.0.1:1883", target, token_file, ca, tenant = "t", until = "node";
  bool plaintext = false, grpc_direct = false;
  int connections = 4, messages = 250, readings = 1000, devices = 16;
  app.add_option("--broker", broker, "the broker's host:port");
  app.add_option("--target", target, "the node (registration, progress)")->required();
  app.add_option("--token-file", token_file, "a service token")->required();
  app.add_option("--tls-ca-file", ca, "the node's CA");
  app.add_flag("--plaintext", plaintext, "the node serves plaintext");
  app.add_option("--tenant", tenant, "tenant of the devices");
  app.add_option("--connections", connections, "publishers (or gRPC callers)")->check(CLI::Range(1, 256));
  app.add_option("--messages", messages, "messages per publisher")->check(CLI::Range(1, 1'000'000));
  app.add_option("--readings", readings, "readings per message")->check(CLI::Range(1, 10'000));
  app.add_option("--devices", devices, "devices in all (a multiple of --connections)")->check(CLI::Range(1, 100'000));
  app.add_option("--until", until, "node: until the node stored all; broker: until a subscriber got all")
      ->check(CLI::IsMember({"node", "broker"}));
  app.add_flag("--grpc", grpc_direct, "send the payloads to the node's Ingest instead");
  CLI11_PARSE(app, argc, argv);
  std::string host;
  int port = 0;
  if (!split(broker, host, port) || devices % connections != 0) {
    std::fprintf(stderr, "mqttload: --broker host:port, and --devices a multiple of --connections\n");
    return 2;
  }
  services::channel_settings cs{target, services::read_token_file(token_file), plaintext, ca, {}, {}, {}, {}};
  std::string error;
  auto channel = services::make_channel(cs, error);
  if (!channel) {
    std::fprintf(stderr, "mqttload: %s\n", error.c_str());
    return 2;
  }
  auto registry = v1::RegistryService::NewStub(channel);
  auto run = now_ms() % 100000;
  std::vector<std::string> ids;
  for (int d = 0; d < devices; ++d) {
    auto id = fmt::format("mq-{}-{}", run, d);
    ids.push_back(id);
    if (auto err = bench::register_monitor(*registry, tenant, id); !err.empty()) {
      std::fprintf(stderr, "mqttload: registering a device failed: %s\n", err.c_str());
      return 1;
    }
  }
  const int per_device = messages * connections / devices;
  const uint64_t total_messages = static_cast<uint64_t>(per_device) * static_cast<uint64_t>(devices);
  const uint64_t total = total_messages * static_cast<uint64_t>(readings);
  const int64_t t0 = now_ms() - (static_cast<int64_t>(per_device) * readings / 6 + 60) * 1000;

  // The payloads, encoded before the clock starts.
  std::vector<std::vector<std::string>> encoded(static_cast<size_t>(devices));
  for (int d = 0; d < devices; ++d)
    for (int i = 0; i < per_device; ++i)
      encoded[static_cast<size_t>(d)].push_back(payload(t0, i, readings).SerializeAsString());

  mosquitto_lib_init();
  counter received;
  mosquitto* sink = nullptr;
  if (until == "broker" && !grpc_direct) {
    sink = connect(host, port, fmt::format("mqttload-sink-{}", run), &received);
    mosquitto_message_v5_callback_set(sink, [](mosquitto*, void* obj, const mosquitto_message*,
                                               const mosquitto_property*) { static_cast<counter*>(obj)->add(); });
    mosquitto_subscribe(sink, nullptr, ("healthtwin/" + tenant + "/devices/+/telemetry").c_str(), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }

  auto start = clock_type::now();
  std::vector<std::thread> workers;
  std::atomic<uint64_t> failed{0};
  auto ingest = v1::IngestService::NewStub(channel);
  for (int c = 0; c < connections; ++c)
    workers.emplace_back([&, c] {
      counter acked;  // the broker's PUBACKs
      uint64_t sent = 0;
      mosquitto* m = grpc_direct ? nullptr : connect(host, port, fmt::format("mqttload-{}-{}", run, c), &acked);
      if (m)
        mosquitto_publish_v5_callback_set(m, [](mosquitto*, void* obj, int, int, const mosquitto_property*) {
          static_cast<counter*>(obj)->add();
        });
      for (int i = 0; i < per_device; ++i)
        for (int d = c; d < devices; d += connections) {
          const auto& bytes = encoded[static_cast<size_t>(d)][static_cast<size_t>(i)];
          if (grpc_direct) {
            v1::TelemetryPayload p;
            p.ParseFromString(bytes);
            v1::IngestRequest req;
            auto* dr = req.add_devices();
            dr->set_device("tenants/" + tenant + "/devices/" + ids[static_cast<size_t>(d)]);
            dr->mutable_sequence()->Swap(p.mutable_sequence());
            dr->mutable_time_ms()->Swap(p.mutable_time_ms());
            dr->mutable_metric()->Swap(p.mutable_metric());
            dr->mutable_value()->Swap(p.mutable_value());
            grpc::ClientContext ctx;
            v1::IngestResponse resp;
            if (!ingest->Ingest(&ctx, req, &resp).ok() || resp.accepted() != static_cast<uint32_t>(readings))
              ++failed;
            continue;
          }
          auto topic = "healthtwin/" + tenant + "/devices/" + ids[static_cast<size_t>(d)] + "/telemetry";
          while (mosquitto_publish(m, nullptr, topic.c_str(), static_cast<int>(bytes.size()), bytes.data(), 1,
                                   false) == MOSQ_ERR_NOMEM)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          ++sent;
        }
      if (m) {
        std::unique_lock lk{acked.m};
        acked.cv.wait(lk, [&] { return acked.n >= sent; });
        lk.unlock();
        mosquitto_disconnect(m);  // after the queued publications are written
        mosquitto_loop_stop(m, false);
        mosquitto_destroy(m);
      }
    });
  for (auto& w : workers)
    w.join();

  if (!grpc_direct && until == "broker") {
    std::unique_lock lk{received.m};
    received.cv.wait_for(lk, std::chrono::minutes(10), [&] { return received.n >= total_messages; });
  } else if (!grpc_direct) {
    auto twins = v1::TwinService::NewStub(channel);
    for (uint64_t stored = 0; stored < total;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      stored = 0;
      for (const auto& id : ids) {
        grpc::ClientContext ctx;
        v1::GetDeviceTwinRequest r;
        r.set_name("tenants/" + tenant + "/devices/" + id);
        v1::DeviceTwin t;
        if (twins->GetDeviceTwin(&ctx, r, &t).ok())
          stored += t.readings_accepted();
      }
      if (clock_type::now() - start > std::chrono::minutes(10)) {
        std::fprintf(stderr, "mqttload: only %llu of %llu readings stored after 10 min\n",
                     static_cast<unsigned long long>(stored), static_cast<unsigned long long>(total));
        return 1;
      }
    }
  }
  double s = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("{\"path\":\"%s\",\"messages\":%llu,\"readings\":%llu,\"seconds\":%.3f,\"messages_per_s\":%.0f,"
              "\"readings_per_s\":%.0f,\"failed\":%llu}\n",
              grpc_direct ? "grpc" : (until == "broker" ? "broker" : "mqtt"),
              static_cast<unsigned long long>(total_messages), static_cast<unsigned long long>(total), s,
              static_cast<double>(total_messages) / s, static_cast<double>(total) / s,
              static_cast<unsigned long long>(failed.load()));
  if (sink) {
    mosquitto_disconnect(sink);
    mosquitto_loop_stop(sink, false);
    mosquitto_destroy(sink);
  }
  return failed.load() == 0 ? 0 : 1;
}
