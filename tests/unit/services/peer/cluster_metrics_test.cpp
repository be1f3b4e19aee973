// The cluster's Prometheus series, read from a membership driven directly.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "actors/cluster/membership.hpp"
#include "services/peer/cluster_metrics.hpp"
#include "tests/unit/actors/cluster/members.hpp"

using namespace healthtwin;
using namespace healthtwin::cluster;

namespace {

class cluster_metrics_test : public ::testing::Test {
protected:
  std::string scrape() {
    prometheus::TextSerializer s;
    return s.Serialize(registry_.Collect());
  }
  bool has(const std::string& line) { return scrape().find(line + "\n") != std::string::npos; }

  std::vector<member> all_ = members_named({"n1", "n2", "n3"});
  membership members_{cluster_state::found(all_, 16), all_[0], std::chrono::milliseconds(3000)};
  prometheus::Registry registry_;
  services::cluster_metrics metrics_{registry_, members_};
};

}  // namespace

TEST_F(cluster_metrics_test, members_are_counted_by_state_and_each_one_is_up_or_not) {
  members_.answered(1, true, 1'000);
  members_.failed(2, "connection refused");
  metrics_.refresh(1'000);
  EXPECT_TRUE(has("healthtwin_cluster_members{state=\"up\"} 2")) << scrape();
  EXPECT_TRUE(has("healthtwin_cluster_members{state=\"down\"} 1"));
  EXPECT_TRUE(has("healthtwin_cluster_members{state=\"unknown\"} 0"));
  EXPECT_TRUE(has("healthtwin_cluster_member_up{member=\"n1\"} 1"));
  EXPECT_TRUE(has("healthtwin_cluster_member_up{member=\"n2\"} 1"));
  EXPECT_TRUE(has("healthtwin_cluster_member_up{member=\"n3\"} 0"));
  auto owned = members_.map()->owned_by(0);
  EXPECT_TRUE(has("healthtwin_cluster_shards_owned " + std::to_string(owned)));
  // n2 falls silent: down at the next scrape.
  metrics_.refresh(4'500);
  EXPECT_TRUE(has("healthtwin_cluster_member_up{member=\"n2\"} 0"));
  EXPECT_TRUE(has("healthtwin_cluster_members{state=\"down\"} 2"));
}

TEST_F(cluster_metrics_test, a_member_taken_off_the_list_leaves_its_series) {
  metrics_.refresh(1'000);
  ASSERT_TRUE(has("healthtwin_cluster_member_up{member=\"n3\"} 0"));
  std::string error;
  members_.update([&](cluster_state& st) { st.set_members(members_named({"n1", "n2"})); }, error);
  ASSERT_TRUE(error.empty()) << error;
  metrics_.refresh(1'000);
  EXPECT_EQ(scrape().find("member=\"n3\""), std::string::npos) << scrape();
  EXPECT_TRUE(has("healthtwin_cluster_members_version 1"));
}

TEST_F(cluster_metrics_test, forwarded_calls_and_hand_offs_are_counted) {
  metrics_.on_forwarded("unary", grpc::StatusCode::OK);
  metrics_.on_forwarded("unary", grpc::StatusCode::OK);
  metrics_.on_forwarded("ingest", grpc::StatusCode::UNAVAILABLE);
  metrics_.on_handoff_phase("checkpoint", 0.2);
  metrics_.on_handoff(true);
  metrics_.on_handoff(false);
  EXPECT_TRUE(has("healthtwin_cluster_forwarded_calls_total{grpc_code=\"OK\",kind=\"unary\"} 2")) << scrape();
  EXPECT_TRUE(has("healthtwin_cluster_forwarded_calls_total{grpc_code=\"UNAVAILABLE\",kind=\"ingest\"} 1"));
  EXPECT_TRUE(has("healthtwin_cluster_handoff_phase_seconds_count{phase=\"checkpoint\"} 1"));
  EXPECT_TRUE(has("healthtwin_cluster_handoff_phase_seconds_bucket{phase=\"checkpoint\",le=\"0.25\"} 1"));
  EXPECT_TRUE(has("healthtwin_cluster_handoffs_total{outcome=\"done\"} 1"));
  EXPECT_TRUE(has("healthtwin_cluster_handoffs_total{outcome=\"abandoned\"} 1"));
}
