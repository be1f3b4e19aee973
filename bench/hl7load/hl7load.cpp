// Load for the HL7 gateway: K MLLP connections each send N ORU^R01
// messages (one monitor frame of 6 vitals each, its own devices), waiting
// for each ACK as PCD-01 senders do; prints messages/s, readings/s and ACK
// latency. With --grpc the same frames go to the node's unary Ingest
// directly (one frame per call, K concurrent callers): the path without
// the gateway, for comparison. Registers its devices first (--target).
//
//   build/bench/hl7load --mllp 127.0.0.1:2575 --target 127.0.0.1:50051 --plaintext
//       --token-file t --tenant h1 --connections 8 --messages 2000
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "bench/support/register_monitor.hpp"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "services/grpc/client_channel.hpp"

using namespace healthtwin;
using clock_type = std::chrono::steady_clock;

namespace {

std::string hl7_time(int64_t ms) {
  auto t = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return fmt::format("{}.{:03}+0000", buf, ms % 1000);
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string oru(const std::string& id, const std::string& device, int64_t t, int k) {
  auto ts = hl7_time(t);
  return "MSH|^~\\&|LOAD|BENCH|HEALTHTWIN|H|" + ts + "||ORU^R01^ORU_R01|" + id + "|P|2.6\r"
         "PID|||P1^^^H^PI\rOBR|1||" + id + "|182777000^monitoring of patient^SCT|||" + ts + "\r"
         "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||" + device + "\r" +
         fmt::format("OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|{}|/min|||||F\r", 70 + k % 5) +
         fmt::format("OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|{}|%|||||F\r", 96 + k % 3) +
         fmt::format("OBX|4|NM|151562^MDC_RESP_RATE^MDC|1.3.1.1|{}|/min|||||F\r", 14 + k % 4) +
         "OBX|5|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.4.1.1|121|mm[Hg]|||||F\r"
         "OBX|6|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.4.1.2|79|mm[Hg]|||||F\r"
         "OBX|7|NM|150364^MDC_TEMP_BODY^MDC|1.5.1.1|36.8|Cel|||||F\r";
}

v1::IngestRequest frame(const std::string& device, uint64_t seq, int64_t t, int k) {
  v1::IngestRequest req;
  auto* d = req.add_devices();
  d->set_device(device);
  std::pair<v1::Metric, double> vitals[] = {{v1::METRIC_HEART_RATE, 70.0 + k % 5}, {v1::METRIC_SPO2, 96.0 + k % 3},
                                            {v1::METRIC_RESPIRATION_RATE, 14.0 + k % 4}, {v1::METRIC_SYSTOLIC_BP, 121},
                                            {v1::METRIC_DIASTOLIC_BP, 79}, {v1::METRIC_TEMPERATURE, 36.8}};
  for (auto& [m, v] : vitals) {
    d->add_sequence(seq++);
    d->add_time_ms(t);
    d->add_metric(m);
    d->add_value(v);
  }
  return req;
}

int connect_to(const std::string& target) {
  auto colon = target.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(target.substr(colon + 1))));
  inet_pton(AF_INET, target.substr(0, colon).c_str(), &addr.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends one framed message and reads its ACK; true on AA.
bool exchange(int fd, const std::string& msg, std::string& buf) {
  std::string framed = "\x0b" + msg + "\x1c\r";
  for (size_t off = 0; off < framed.size();) {
    auto n = ::send(fd, framed.data() + off, framed.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    off += static_cast<size_t>(n);
  }
  for (;;) {
    auto end = buf.find("\x1c\r");
    if (end != std::string::npos) {
      bool aa = buf.find("MSA|AA|") != std::string::npos && buf.find("MSA|AA|") < end;
      buf.erase(0, end + 2);
      return aa;
    }
    char chunk[4096];
    auto n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0)
      return false;
    buf.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hl7load: ORU^R01 load through the HL7 gateway (or the same frames over gRPC)"};
  std::string mllp, target, token_file, ca, tenant = "h1";
  bool plaintext = false, grpc_mode = false;
  int connections = 8, messages = 2000;
  app.add_option("--mllp", mllp, "the gateway's MLLP address");
  app.add_option("--target", target, "the node's gRPC address (registration, --grpc)")->required();
  app.add_option("--token-file", token_file, "a service token")->required();
  app.add_option("--tls-ca-file", ca, "the node's CA");
  app.add_flag("--plaintext", plaintext, "the node serves plaintext");
  app.add_option("--tenant", tenant, "the gateway's tenant");
  app.add_option("--connections", connections, "concurrent senders")->check(CLI::Range(1, 256));
  app.add_option("--messages", messages, "messages per sender")->check(CLI::Range(1, 10'000'000));
  app.add_flag("--grpc", grpc_mode, "send the frames to the node's Ingest instead");
  CLI11_PARSE(app, argc, argv);
  if (!grpc_mode && mllp.empty()) {
    std::fprintf(stderr, "hl7load: --mllp or --grpc\n");
    return 2;
  }
  services::channel_settings cs{target, services::read_token_file(token_file), plaintext, ca, {}, {}, {}, {}};
  std::string error;
  auto channel = services::make_channel(cs, error);
  if (!channel) {
    std::fprintf(stderr, "hl7load: %s\n", error.c_str());
    return 2;
  }
  auto registry = v1::RegistryService::NewStub(channel);
  auto run = now_ms();
  std::vector<std::string> devices;
  for (int c = 0; c < connections; ++c) {
    auto id = fmt::format("load-{}-{}", run % 100000, c);
    devices.push_back(id);
    if (auto err = bench::register_monitor(*registry, tenant, id); !err.empty()) {
      std::fprintf(stderr, "hl7load: registering %s failed: %s\n", id.c_str(), err.c_str());
      return 1;
    }
  }

  std::atomic<uint64_t> ok{0}, failed{0};
  std::vector<std::vector<double>> latencies(static_cast<size_t>(connections));
  auto t0 = clock_type::now();
  std::vector<std::thread> senders;
  for (int c = 0; c < connections; ++c)
    senders.emplace_back([&, c] {
      auto& lat = latencies[static_cast<size_t>(c)];
      lat.reserve(static_cast<size_t>(messages));
      auto device = devices[static_cast<size_t>(c)];
      auto start = now_ms() - messages * 1000LL;  // one frame a second, ending now
      if (grpc_mode) {
        auto stub = v1::IngestService::NewStub(channel);
        for (int k = 0; k < messages; ++k) {
          auto req = frame("tenants/" + tenant + "/devices/" + device, 1 + static_cast<uint64_t>(k) * 6, start + k * 1000LL, k);
          auto s = clock_type::now();
          grpc::ClientContext ctx;
          v1::IngestResponse resp;
          auto st = stub->Ingest(&ctx, req, &resp);
          lat.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - s).count());
          (st.ok() && resp.rejections_size() == 0 ? ok : failed)++;
        }
        return;
      }
      int fd = connect_to(mllp);
      if (fd < 0) {
        failed += static_cast<uint64_t>(messages);
        return;
      }
      std::string buf;
      for (int k = 0; k < messages; ++k) {
        auto msg = oru(fmt::format("{}-{}-{}", run, c, k), device, start + k * 1000LL, k);
        auto s = clock_type::now();
        bool aa = exchange(fd, msg, buf);
        lat.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - s).count());
        (aa ? ok : failed)++;
      }
      ::close(fd);
    });
  for (auto& t : senders)
    t.join();
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::vector<double> all;
  for (auto& l : latencies)
    all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[static_cast<size_t>(p * static_cast<double>(all.size() - 1))]; };
  fmt::print("{}: {} connections x {} messages (6 readings each): {} acked, {} failed in {:.1f} s\n",
             grpc_mode ? "grpc" : "mllp", connections, messages, ok.load(), failed.load(), secs);
  fmt::print("{{\"messages_per_s\":{:.0f},\"readings_per_s\":{:.0f},\"ack_p50_ms\":{:.2f},\"ack_p99_ms\":{:.2f}}}\n",
             static_cast<double>(ok.load()) / secs, 6.0 * static_cast<double>(ok.load()) / secs, pct(0.5), pct(0.99));
  return failed.load() == 0 ? 0 : 1;
}
