// Durability under crashes: twinsim streams readings while the node is
// killed with SIGKILL and restarted, five times. Every reading twinsim saw
// acknowledged must then be in the patient's history exactly once, and no
// reading may appear twice (replay after a crash applies each one once).

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

/// Checks the node against twinsim's acked log: every acknowledged reading is
/// in the history exactly once and no reading is stored twice. Returns the
/// number of acknowledged readings checked.
size_t verify_acked(const std::string& acked_path, node_process& node) {
  std::map<std::pair<std::string, int>, std::map<int64_t, double>> acked;
  size_t acked_lines = 0;
  {
    std::ifstream in{acked_path};
    std::string patient;
    int metric;
    int64_t t;
    double value;
    while (in >> patient >> metric >> t >> value) {
      acked[{patient, metric}][t] = value;
      ++acked_lines;
    }
  }
  api_client client{node.channel("crash")};
  size_t checked = 0;
  for (auto& [key, readings] : acked) {
    auto history = client.history(key.first, static_cast<v1::Metric>(key.second), 0,
                                  now_ms() + 3'600'000);
    std::map<int64_t, std::vector<double>> by_time;
    for (auto& [t, v] : history)
      by_time[t].push_back(v);
    for (auto& [t, values] : by_time)
      EXPECT_EQ(values.size(), 1u) << key.first << " metric " << key.second << " at " << t
                                   << " is stored " << values.size() << " times";
    for (auto& [t, v] : readings) {
      auto it = by_time.find(t);
      if (it == by_time.end()) {
        ADD_FAILURE() << "acknowledged reading lost: " << key.first << " metric " << key.second
                      << " at " << t;
        continue;
      }
      EXPECT_EQ(it->second.front(), v);
      ++checked;
    }
  }
  EXPECT_EQ(checked, acked_lines);
  return acked_lines;
}

std::vector<std::string> twinsim_args(const node_process& node, const std::filesystem::path& dir,
                                      const std::string& acked_path) {
  auto token_file = dir / "twinsim.token";
  write_text(token_file, node.token("crash", {"service"}, "twinsim"));
  std::vector<std::string> args{TWINSIM_BINARY, "--tenant=crash",
          "--patients=40", "--rate=4000", "--batch=100", "--concurrency=2", "--window=4",
          "--mode=stream", "--quiet", "--start-offset-s=3600", "--acked-log=" + acked_path};
  for (auto& a : node.client_args(token_file))
    args.push_back(a);
  return args;
}

}  // namespace

TEST(crash_test, every_acknowledged_reading_survives_five_sigkills_exactly_once) {
  temp_dir dir;
  auto port = free_port();
  // A short checkpoint interval makes crashes land both before and after
  // checkpoints (replay from a snapshot and from the log).
  std::vector<std::string> node_args{"--checkpoint-interval-ms=700"};
  auto node = std::make_unique<node_process>(dir.path(), node_args, port);
  ASSERT_TRUE(node->wait_ready()) << node->log();

  auto acked_path = (dir.path() / "acked.txt").string();
  child_process twinsim{twinsim_args(*node, dir.path(), acked_path), (dir.path() / "twinsim.log").string()};

  std::mt19937 rng{20261124};
  std::uniform_int_distribution<int> pause_ms{800, 2000};
  for (int cycle = 0; cycle < 5; ++cycle) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    ASSERT_TRUE(twinsim.running()) << read_file(dir.path() / "twinsim.log");
    node->crash();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    node = std::make_unique<node_process>(dir.path(), node_args, port);
    ASSERT_TRUE(node->wait_ready()) << node->log();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  twinsim.kill(SIGTERM, std::chrono::seconds(60));
  EXPECT_GT(verify_acked(acked_path, *node), 5000u) << read_file(dir.path() / "twinsim.log");
  EXPECT_EQ(node->stop(), 0) << node->log();
}

// A graceful stop under load: streams are drained (their accepted batches
// acknowledged), the node exits 0, and after a restart everything that was
// acknowledged is there, once.
TEST(crash_test, sigterm_under_load_keeps_every_acknowledged_reading) {
  temp_dir dir;
  auto port = free_port();
  auto node = std::make_unique<node_process>(dir.path(), std::vector<std::string>{}, port);
  ASSERT_TRUE(node->wait_ready()) << node->log();
  auto acked_path = (dir.path() / "acked.txt").string();
  child_process twinsim{twinsim_args(*node, dir.path(), acked_path), (dir.path() / "twinsim.log").string()};
  for (int cycle = 0; cycle < 2; ++cycle) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(node->stop(), 0) << node->log();
    node = std::make_unique<node_process>(dir.path(), std::vector<std::string>{}, port);
    ASSERT_TRUE(node->wait_ready()) << node->log();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  twinsim.kill(SIGTERM, std::chrono::seconds(60));
  EXPECT_GT(verify_acked(acked_path, *node), 3000u) << read_file(dir.path() / "twinsim.log");
  EXPECT_EQ(node->stop(), 0) << node->log();
}
