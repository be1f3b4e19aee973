// A restarting node must not report ready, nor accept calls, before it has
// replayed its ingest log: load balancers and Kubernetes rely on /readyz.

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

int http_status(const node_process& node, const std::string& path) {
  auto cmd = node.curl(path, "-o /dev/null -m 1 -w '%{http_code}'");
  std::array<char, 16> buf{};
  std::string out;
  auto* p = popen(cmd.c_str(), "r");
  while (fgets(buf.data(), buf.size(), p))
    out += buf.data();
  pclose(p);
  return std::atoi(out.c_str());
}

}  // namespace

TEST(readiness_test, not_ready_and_unavailable_until_the_log_is_replayed) {
  temp_dir dir;
  auto grpc_port = free_port();
  // No checkpoint during the run: everything stays in the log to replay.
  std::vector<std::string> args{"--checkpoint-interval-ms=3600000"};
  auto node = std::make_unique<node_process>(dir.path(), args, grpc_port);
  ASSERT_TRUE(node->wait_ready()) << node->log();
  auto token_file = dir.path() / "twinsim.token";
  write_text(token_file, node->token("r", {"service"}, "twinsim"));
  std::vector<std::string> sim_args{TWINSIM_BINARY, "--tenant=r", "--patients=2000", "--batch=1000",
                                    "--concurrency=4", "--duration=4", "--quiet"};
  for (auto& a : node->client_args(token_file))
    sim_args.push_back(a);
  child_process twinsim{sim_args, (dir.path() / "twinsim.log").string()};
  EXPECT_EQ(twinsim.wait(std::chrono::seconds(120)), 0) << read_file(dir.path() / "twinsim.log");
  api_client before{node->channel("r")};
  auto accepted = [&](api_client& c) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::NodeStatus s;
    auto st = c.cluster->GetNodeStatus(&ctx, {}, &s);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return std::make_pair(s.ready(), s.log_position());
  };
  auto [was_ready, position] = accepted(before);
  ASSERT_TRUE(was_ready);
  node->crash();

  auto http_port = free_port();
  node = std::make_unique<node_process>(dir.path(), args, grpc_port, http_port);
  int not_ready = 0, unavailable = 0;
  api_client during{node->channel("r")};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    auto code = http_status(*node, "/readyz");
    if (code == 200)
      break;
    if (code == 503) {
      ++not_ready;
      EXPECT_EQ(http_status(*node, "/healthz"), 200);
      grpc::ClientContext ctx;
      api_client::deadline(ctx, 2);
      v1::GetPatientRequest req;
      req.set_name("tenants/r/patients/p-00000");
      v1::Patient out;
      auto st = during.registry->GetPatient(&ctx, req, &out);
      if (st.error_code() == grpc::StatusCode::UNAVAILABLE)
        ++unavailable;
    }
  }
  ASSERT_TRUE(node->wait_ready()) << node->log();
  EXPECT_GT(not_ready, 0) << "never saw /readyz answer 503 during recovery\n" << node->log();
  EXPECT_GT(unavailable, 0);
  EXPECT_NE(node->log().find("recovery: replayed"), std::string::npos);
  api_client after{node->channel("r")};
  auto [ready_now, position_now] = accepted(after);
  EXPECT_TRUE(ready_now);
  EXPECT_EQ(position_now, position);
  EXPECT_EQ(node->stop(), 0) << node->log();
}
