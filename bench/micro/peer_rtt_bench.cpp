// The node-to-node transport (ADR 0012): round trips of the internal gRPC
// PeerService over loopback, with mutual TLS as members use it and in
// plaintext, one caller at a time and with many callers at once. Compare
// with CAF's own distribution (BASP), measured in CAF-0.17-COOKBOOK.md
// section 5 on this kind of machine.
//
//   peer_rtt_bench [calls=5000] [callers=16]

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "healthtwin/internal/peer.grpc.pb.h"
#include "services/grpc/client_channel.hpp"
#include "services/peer/cluster_peers.hpp"
#include "services/grpc/read_file.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"

using namespace healthtwin;
using clock_type = std::chrono::steady_clock;

namespace {

struct run_result {
  double median_us, p99_us, calls_per_s;
};

run_result measure(internal::PeerService::Stub& stub, const internal::PeerHello& hello,
                   uint64_t calls, unsigned callers) {
  std::vector<std::vector<double>> lat(callers);
  std::atomic<bool> failed{false};
  auto t0 = clock_type::now();
  std::vector<std::thread> threads;
  for (unsigned c = 0; c < callers; ++c)
    threads.emplace_back([&, c] {
      for (uint64_t i = 0; i < calls / callers; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        internal::PeerHello resp;
        auto s = clock_type::now();
        if (!stub.Hello(&ctx, hello, &resp).ok())
          failed = true;
        lat[c].push_back(std::chrono::duration<double, std::micro>(clock_type::now() - s).count());
      }
    });
  for (auto& t : threads)
    t.join();
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (failed)
    std::cerr << "some calls failed\n";
  std::vector<double> all;
  for (auto& l : lat)
    all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  return {all[all.size() / 2], all[all.size() * 99 / 100], static_cast<double>(all.size()) / secs};
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t calls = argc > 1 ? std::stoull(argv[1]) : 5000;
  unsigned callers = argc > 2 ? static_cast<unsigned>(std::stoul(argv[2])) : 16;
  testing::temp_dir dir;
  testing::test_pki pki{dir.path() / "pki"};

  std::vector<cluster::member> all{{"a", "127.0.0.1:0"}, {"b", "127.0.0.1:0"}};
  cluster::membership members{cluster::cluster_state::found(all, 1024), all[0], std::chrono::seconds(3)};
  std::atomic<bool> ready{true};
  services::peer_settings ps;
  ps.cluster_name = "bench";
  ps.shards = 1024;

  internal::PeerHello hello;
  hello.set_cluster("bench");
  hello.set_node("b");
  hello.set_shards(1024);
  hello.set_twin_hash("xxh64-seed0");
  hello.set_placement_hash("hrw-xxh64-shardseed");

  for (bool tls : {true, false}) {
    ps.plaintext = !tls;  // with TLS, the caller's certificate must name it
    // The bench calls Hello only: no patients to list.
    auto service = services::make_peer_service(ps, members, ready, services::peer_handlers{});
    grpc::ServerBuilder builder;
    int port = 0;
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (tls) {
      grpc::SslServerCredentialsOptions opts{GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY};
      opts.pem_root_certs = *services::read_file(pki.ca_cert.string());
      opts.pem_key_cert_pairs.push_back(
          {*services::read_file(pki.node_key.string()), *services::read_file(pki.node_cert.string())});
      creds = grpc::SslServerCredentials(opts);
    }
    builder.AddListeningPort("127.0.0.1:0", creds, &port);
    builder.RegisterService(service.get());
    auto server = builder.BuildAndStart();
    services::channel_settings cs;
    cs.target = "127.0.0.1:" + std::to_string(port);
    cs.plaintext = !tls;
    if (tls) {
      cs.ca_file = pki.ca_cert.string();
      cs.cert_file = pki.node_cert.string();
      cs.key_file = pki.node_key.string();
    }
    std::string error;
    auto stub = internal::PeerService::NewStub(services::make_channel(cs, error));
    measure(*stub, hello, 500, 1);  // connect and warm up
    auto one = measure(*stub, hello, calls, 1);
    auto many = measure(*stub, hello, calls * 4, callers);
    std::cout << fmt::format(
        "{:9}: 1 caller: median {:.0f} us, p99 {:.0f} us, {:.0f} calls/s; {} callers: median {:.0f} "
        "us, p99 {:.0f} us, {:.0f} calls/s\n",
        tls ? "mTLS" : "plaintext", one.median_us, one.p99_us, one.calls_per_s, callers,
        many.median_us, many.p99_us, many.calls_per_s);
    server->Shutdown();
  }
  return 0;
}
