// Each module's settings are bound once from the node's flags, and a node
// undoes what it started last first.

#include "services/node/node_settings.hpp"

#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "services/node/stop_stack.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin;
using namespace healthtwin::node;

namespace {

node_settings bound(std::vector<std::string> args) {
  static healthtwin::testing::temp_dir dir;
  auto secret = dir.str() + "/secret";
  std::ofstream{secret} << "x";
  args.insert(args.begin(), {std::string{"healthtwin"}, std::string{"--insecure-plaintext"},
                             "--auth-hs256-secret-file=" + secret});
  auto parsed = parse_node_config(args);
  EXPECT_TRUE(parsed.config) << parsed.message;
  return parsed.config ? bind_settings(*parsed.config) : node_settings{};
}

}  // namespace

TEST(node_settings, the_api_gets_the_regions) {
  auto s = bound({"--region=eu-central", "--region-endpoints=us-east=ht.us.example:443",
                  "--region-routing=forward"});
  EXPECT_EQ(s.api.regions.self, "eu-central");
  EXPECT_EQ(s.api.regions.endpoints.at("us-east"), "ht.us.example:443");
  EXPECT_TRUE(s.api.regions.forward);
  EXPECT_TRUE(bound({}).api.regions.self.empty());
}

TEST(node_settings, every_module_gets_its_flags) {
  auto s = bound({"--node-name=n1", "--data-dir=/d", "--shards=64", "--sync-wal=false",
                  "--retention-raw-days=7", "--retention-tenant=t1=2:400",
                  "--alert-escalate-after-ms=30000", "--device-check-interval-ms=500",
                  "--checkpoint-spread-ms=100", "--http-listen=127.0.0.1:0",
                  "--rate-limit-device-readings-per-s=5", "--max-clock-skew-ms=1000",
                  "--passivate-after-ms=120000"});
  EXPECT_EQ(s.store.data_dir, "/d");
  EXPECT_EQ(s.twins.passivate_after_ms, 120'000);
  EXPECT_EQ(s.ingest.directory_idle, std::chrono::milliseconds(120'000));
  EXPECT_EQ(s.store.shards, 64u);
  EXPECT_FALSE(s.store.sync_wal);
  EXPECT_EQ(s.retention.defaults.raw_readings_ms, 7 * 86'400'000LL);
  ASSERT_EQ(s.retention.tenants.count("t1"), 1u);
  EXPECT_EQ(s.retention.of("t1").raw_readings_ms, 2 * 86'400'000LL);
  EXPECT_EQ(s.retention.of("t1").alerts_ms, 400 * 86'400'000LL);
  EXPECT_EQ(s.hub.escalate_after_ms, 30'000);
  EXPECT_EQ(s.twins.device_tick_ms, 500);
  EXPECT_EQ(s.ingest.checkpoint_spread, std::chrono::milliseconds(100));
  EXPECT_EQ(s.http.listen, "127.0.0.1:0");
  EXPECT_EQ(s.api.node_name, "n1");
  EXPECT_EQ(s.api.shards, 64u);
  EXPECT_EQ(s.api.device_readings_per_s, 5);
  EXPECT_EQ(s.api.max_clock_skew, std::chrono::milliseconds(1000));
  // A single node: its own founding member, no cluster name in the API.
  EXPECT_FALSE(s.clustered);
  ASSERT_EQ(s.founding_members.size(), 1u);
  EXPECT_EQ(s.founding_members[0].name, "n1");
  EXPECT_TRUE(s.api.cluster_name.empty());
}

TEST(node_settings, a_member_gets_its_cluster_and_hand_off_settings) {
  auto s = bound({"--node-name=b", "--cluster-name=ward", "--cluster-members=a=h1:7000,b=h2:7000",
                  "--cluster-listen=127.0.0.1:0", "--cluster-probe-interval-ms=2500",
                  "--handoff-chunk-bytes=262144", "--handoff-checkpoint-timeout-ms=5000",
                  "--handoff-stream-timeout-ms=60000"});
  EXPECT_TRUE(s.clustered);
  EXPECT_EQ(s.founding_members.size(), 2u);
  EXPECT_EQ(s.api.cluster_name, "ward");
  EXPECT_EQ(s.peer.cluster_name, "ward");
  EXPECT_EQ(s.peer.probe_interval, std::chrono::milliseconds(2500));
  EXPECT_EQ(s.peer.probe_timeout, std::chrono::milliseconds(1000));  // at most 1 s
  EXPECT_EQ(s.api.handoff.chunk_bytes, 262'144u);
  EXPECT_EQ(s.api.handoff.checkpoint_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(s.api.handoff.stream_timeout, std::chrono::milliseconds(60'000));
}

TEST(node_settings, hand_off_settings_out_of_range_are_refused_naming_the_option) {
  for (auto bad : {"--handoff-chunk-bytes=10", "--handoff-checkpoint-timeout-ms=5",
                   "--handoff-stream-timeout-ms=-1"}) {
    auto out = parse_node_config({"healthtwin", "--insecure-plaintext", bad});
    EXPECT_FALSE(out.config) << bad;
    auto flag = std::string{bad}.substr(0, std::string{bad}.find('='));
    EXPECT_NE(out.message.find(flag), std::string::npos) << out.message;
  }
}

TEST(stop_stack, actions_run_last_first_once_and_past_one_that_throws) {
  std::vector<std::string> ran;
  {
    stop_stack stops;
    stops.push("storage", [&] { ran.push_back("storage"); });
    stops.push("actors", [&] {
      ran.push_back("actors");
      throw std::runtime_error("a stop that fails");
    });
    stops.push("api", [&] { ran.push_back("api"); });
    stops.unwind();
    EXPECT_EQ(stops.size(), 0u);
    stops.push("late", [&] { ran.push_back("late"); });
  }  // the destructor unwinds what was pushed since
  EXPECT_EQ(ran, (std::vector<std::string>{"api", "actors", "storage", "late"}));
}
