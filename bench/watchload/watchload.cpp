// watchload: many concurrent WatchPatientTwin streams against a node, to
// measure what they cost it while idle and how fast a change reaches them
// (issue 24, "watches push"). Registers --patients patients with a monitor
// each, opens --watches watches spread over them (min_interval 100 ms, on
// 8 channels, gRPC's callback client), waits for every first message, then:
//  1. idle: the node's CPU (utime + stime of --node-pid) over --idle-s;
//  2. changes: --changes readings, one patient at a time, 200 ms apart;
//     for each, the time from sending it to each of that patient's
//     watches receiving the changed twin; p50 / p99 / max.
// Prints the figures; not a test.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "bench/support/process_cpu.hpp"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "healthtwin/v1/twin.grpc.pb.h"
#include "services/grpc/client_channel.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
namespace v1 = healthtwin::v1;

namespace {

struct options {
  std::string target, token_file, tls_ca_file, tenant = "watchload";
  int patients = 1000, watches = 10000, idle_s = 20, changes = 200;
  int node_pid = 0;
};

// One watch: counts its messages and stamps the latest.
class watch final : public grpc::ClientReadReactor<v1::PatientTwin> {
public:
  watch(v1::TwinService::Stub& stub, const std::string& patient) {
    req_.set_name(patient);
    req_.mutable_read_mask()->add_paths("readings_applied");
    req_.mutable_min_interval()->set_nanos(100'000'000);
    stub.async()->WatchPatientTwin(&ctx_, &req_, this);
    StartRead(&msg_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok)
      return;
    {
      std::lock_guard<std::mutex> guard{mtx};
      ++messages;
      applied = msg_.readings_applied();
      last = clock_type::now();
    }
    cv.notify_all();
    StartRead(&msg_);
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> guard{mtx};
    done = true;
    status = s;
    cv.notify_all();
  }
  void cancel() { ctx_.TryCancel(); }

  std::mutex mtx;
  std::condition_variable cv;
  uint64_t messages = 0, applied = 0;
  clock_type::time_point last{};
  bool done = false;
  grpc::Status status;

private:
  grpc::ClientContext ctx_;
  v1::WatchPatientTwinRequest req_;
  v1::PatientTwin msg_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"many concurrent twin watches against a node: idle cost and change latency"};
  app.add_option("--target", o.target, "host:port of the node's gRPC API")->required();
  app.add_option("--token-file", o.token_file, "bearer token (service and clinician roles)")->required();
  app.add_option("--tls-ca-file", o.tls_ca_file, "PEM CA of the node's certificate");
  app.add_option("--tenant", o.tenant)->capture_default_str();
  app.add_option("--patients", o.patients)->capture_default_str();
  app.add_option("--watches", o.watches)->capture_default_str();
  app.add_option("--idle-s", o.idle_s)->capture_default_str();
  app.add_option("--changes", o.changes)->capture_default_str();
  app.add_option("--node-pid", o.node_pid, "the node's PID, for its CPU time")->required();
  CLI11_PARSE(app, argc, argv);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 8; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("watchload.channel", i);
    healthtwin::services::channel_settings cs;
    cs.target = o.target;
    cs.token = healthtwin::services::read_token_file(o.token_file);
    cs.ca_file = o.tls_ca_file;
    std::string error;
    auto ch = healthtwin::services::make_channel(cs, error, args);
    if (!ch) {
      std::cerr << error << "\n";
      return 2;
    }
    channels.push_back(std::move(ch));
  }
  auto registry = v1::RegistryService::NewStub(channels[0]);
  auto ingest = v1::IngestService::NewStub(channels[0]);
  auto patient = [&](int i) { return fmt::format("tenants/{}/patients/w{}", o.tenant, i); };
  auto device = [&](int i) { return fmt::format("tenants/{}/devices/wm{}", o.tenant, i); };
  for (int i = 0; i < o.patients; ++i) {
    grpc::ClientContext c1, c2, c3;
    v1::CreatePatientRequest p;
    p.set_parent("tenants/" + o.tenant);
    p.set_patient_id(fmt::format("w{}", i));
    p.mutable_patient()->set_ward("W1");
    v1::Patient po;
    (void)registry->CreatePatient(&c1, p, &po);  // ALREADY_EXISTS on a second run
    v1::CreateDeviceRequest d;
    d.set_parent("tenants/" + o.tenant);
    d.set_device_id(fmt::format("wm{}", i));
    d.mutable_device()->set_type(v1::DEVICE_TYPE_BEDSIDE_MONITOR);
    v1::Device dout;
    (void)registry->CreateDevice(&c2, d, &dout);
    v1::AssignDeviceRequest a;
    a.set_device(device(i));
    a.set_patient(patient(i));
    (void)registry->AssignDevice(&c3, a, &dout);
  }

  std::vector<std::unique_ptr<v1::TwinService::Stub>> stubs;
  for (auto& ch : channels)
    stubs.push_back(v1::TwinService::NewStub(ch));
  std::vector<std::unique_ptr<watch>> watches;
  std::this_thread::sleep_for(2s);
  auto rss_before = healthtwin::bench::process_rss_mb(o.node_pid);
  auto opened = clock_type::now();
  for (int i = 0; i < o.watches; ++i)
    watches.push_back(std::make_unique<watch>(*stubs[static_cast<size_t>(i) % stubs.size()], patient(i % o.patients)));
  for (auto& w : watches) {
    std::unique_lock<std::mutex> lock{w->mtx};
    if (!w->cv.wait_for(lock, 120s, [&] { return w->messages > 0 || w->done; }) || w->done) {
      std::cerr << "a watch did not start: " << w->status.error_message() << "\n";
      return 1;
    }
  }
  auto open_s = std::chrono::duration<double>(clock_type::now() - opened).count();
  std::this_thread::sleep_for(2s);
  auto rss_after = healthtwin::bench::process_rss_mb(o.node_pid);
  fmt::print("{} watches over {} patients open in {:.1f} s; node RSS {:.0f} -> {:.0f} MB ({:.1f} KB per watch)\n",
             o.watches, o.patients, open_s, rss_before, rss_after, (rss_after - rss_before) * 1024 / o.watches);

  std::this_thread::sleep_for(2s);  // settle
  auto cpu0 = healthtwin::bench::process_cpu_s(o.node_pid);
  auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::seconds(o.idle_s));
  auto cpu = healthtwin::bench::process_cpu_s(o.node_pid) - cpu0;
  auto wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  fmt::print("idle: node CPU {:.3f} s over {:.1f} s = {:.2f} % of one core\n", cpu, wall, 100 * cpu / wall);

  std::vector<double> latencies_ms, after_ack_ms;
  uint64_t seq_base = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count());
  for (int c = 0; c < o.changes; ++c) {
    int k = c % o.patients;
    std::vector<watch*> mine;
    std::vector<uint64_t> before;
    for (int i = k; i < o.watches; i += o.patients) {
      mine.push_back(watches[static_cast<size_t>(i)].get());
      std::lock_guard<std::mutex> guard{mine.back()->mtx};
      before.push_back(mine.back()->applied);
    }
    v1::IngestRequest req;
    req.set_batch_id(seq_base * 1000 + static_cast<uint64_t>(c));
    auto* dr = req.add_devices();
    dr->set_device(device(k));
    dr->add_sequence(seq_base * 1000 + static_cast<uint64_t>(c));
    dr->add_time_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count());
    dr->add_metric(v1::METRIC_HEART_RATE);
    dr->add_value(70 + c % 10);
    grpc::ClientContext ic;
    v1::IngestResponse resp;
    auto sent = clock_type::now();
    auto st = ingest->Ingest(&ic, req, &resp);
    auto acked = clock_type::now();
    if (!st.ok()) {
      std::cerr << "ingest: " << st.error_message() << "\n";
      return 1;
    }
    double worst = 0;
    for (size_t j = 0; j < mine.size(); ++j) {
      auto* w = mine[j];
      std::unique_lock<std::mutex> lock{w->mtx};
      if (w->cv.wait_for(lock, 5s, [&] { return w->applied > before[j]; })) {
        latencies_ms.push_back(std::chrono::duration<double, std::milli>(w->last - sent).count());
        after_ack_ms.push_back(std::max(0.0, std::chrono::duration<double, std::milli>(w->last - acked).count()));
        worst = std::max(worst, after_ack_ms.back());
      } else {
        latencies_ms.push_back(5000);  // counted as missed
        after_ack_ms.push_back(5000);
      }
    }
    if (worst > 100)  // when, to line it up with the node's log
      fmt::print("slow change {}: {:.1f} ms after its acknowledgement, acknowledged after {:.1f} ms, at {}\n", c,
                 worst, std::chrono::duration<double, std::milli>(acked - sent).count(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count());
    std::this_thread::sleep_for(200ms);
  }
  fmt::print("changes: {} readings, {} deliveries: from sending the reading p50 {:.1f} ms, p99 {:.1f} ms, max "
             "{:.1f} ms; from its acknowledgement p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms\n",
             o.changes, latencies_ms.size(), percentile(latencies_ms, 0.5), percentile(latencies_ms, 0.99),
             percentile(latencies_ms, 1.0), percentile(after_ack_ms, 0.5), percentile(after_ack_ms, 0.99),
             percentile(after_ack_ms, 1.0));
  for (auto& w : watches)
    w->cancel();
  for (auto& w : watches) {
    std::unique_lock<std::mutex> lock{w->mtx};
    w->cv.wait_for(lock, 10s, [&] { return w->done; });
  }
  return 0;
}
