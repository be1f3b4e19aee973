#include "actors/cluster/shard_map.hpp"

#include <gtest/gtest.h>

#include "actors/cluster/membership.hpp"
#include "tests/unit/actors/cluster/members.hpp"

namespace healthtwin::cluster {
namespace {

// Pinned: changing the placement hash moves shards between running nodes.
TEST(shard_map_test, weights_are_pinned) {
  EXPECT_EQ(shard_map::weight("node-a", 0), 375925415828903691ull);
  EXPECT_EQ(shard_map::weight("node-a", 1), 17867034395904865451ull);
  EXPECT_EQ(shard_map::weight("healthtwin-2", 1023), 13457750785674948905ull);
}

TEST(shard_map_test, the_owner_has_the_highest_weight_whatever_the_list_order) {
  shard_map a{members_named({"n1", "n2", "n3"}), 1024};
  shard_map b{members_named({"n3", "n1", "n2"}), 1024};
  for (uint32_t s = 0; s < 1024; ++s) {
    auto& owner = a.members()[a.owner(s)].name;
    EXPECT_EQ(owner, b.members()[b.owner(s)].name) << "shard " << s;
    for (auto& m : a.members())
      EXPECT_GE(shard_map::weight(owner, s), shard_map::weight(m.name, s));
  }
}

TEST(shard_map_test, shards_spread_evenly) {
  shard_map map{members_named({"n1", "n2", "n3"}), 1024};
  uint32_t total = 0;
  for (uint32_t m = 0; m < 3; ++m) {
    EXPECT_GT(map.owned_by(m), 1024u / 3 * 80 / 100) << map.members()[m].name;
    EXPECT_LT(map.owned_by(m), 1024u / 3 * 120 / 100) << map.members()[m].name;
    total += map.owned_by(m);
  }
  EXPECT_EQ(total, 1024u);
}

TEST(shard_map_test, adding_a_member_moves_only_the_shards_it_takes) {
  shard_map before{members_named({"n1", "n2", "n3"}), 1024};
  shard_map after{members_named({"n1", "n2", "n3", "n4"}), 1024};
  uint32_t moved = 0;
  for (uint32_t s = 0; s < 1024; ++s) {
    auto& was = before.members()[before.owner(s)].name;
    auto& now = after.members()[after.owner(s)].name;
    if (was != now) {
      EXPECT_EQ(now, "n4") << "shard " << s << " moved between old members";
      ++moved;
    }
  }
  EXPECT_EQ(moved, after.owned_by(3));
  EXPECT_GT(moved, 1024u / 4 * 80 / 100);
  EXPECT_LT(moved, 1024u / 4 * 120 / 100);
}

TEST(shard_map_test, removing_a_member_moves_only_its_shards) {
  shard_map before{members_named({"n1", "n2", "n3"}), 1024};
  shard_map after{members_named({"n1", "n3"}), 1024};
  for (uint32_t s = 0; s < 1024; ++s) {
    auto& was = before.members()[before.owner(s)].name;
    auto& now = after.members()[after.owner(s)].name;
    if (was != "n2") {
      EXPECT_EQ(was, now) << "shard " << s;
    }
  }
}

TEST(shard_map_test, member_lists_parse_or_name_the_bad_item) {
  auto ok = parse_members("a=10.0.0.1:7000,b=host-b:7001");
  ASSERT_TRUE(ok.error.empty()) << ok.error;
  ASSERT_EQ(ok.members.size(), 2u);
  EXPECT_EQ(ok.members[1].name, "b");
  EXPECT_EQ(ok.members[1].address, "host-b:7001");
  EXPECT_NE(parse_members("a=h:1,b").error.find("\"b\""), std::string::npos);
  EXPECT_NE(parse_members("a=h:1,a=g:2").error.find("twice"), std::string::npos);
  EXPECT_FALSE(parse_members("=h:1").error.empty());
  EXPECT_FALSE(parse_members("a=h:").error.empty());
  EXPECT_FALSE(parse_members("a=h:1,").error.empty());
}

TEST(shard_map_test, statefulset_members_are_its_pods_behind_the_headless_service) {
  auto m = statefulset_members("healthtwin", "healthtwin-peers", 3, 7000);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[2].name, "healthtwin-2");
  EXPECT_EQ(m[2].address, "healthtwin-2.healthtwin-peers:7000");
}

TEST(membership_test, members_go_down_when_a_probe_fails_or_they_fall_silent) {
  auto all = members_named({"n1", "n2", "n3"});
  membership ms{cluster_state::found(all, 16), all[0], std::chrono::milliseconds(3000)};
  auto h = ms.health(1'000);
  EXPECT_EQ(h[0].state, member_state::up);  // this node
  EXPECT_EQ(h[1].state, member_state::unknown);
  ms.answered(1, true, 1'000);
  ms.failed(2, "connection refused");
  h = ms.health(2'000);
  EXPECT_EQ(h[1].state, member_state::up);
  EXPECT_TRUE(h[1].ready);
  EXPECT_EQ(h[2].state, member_state::down);
  EXPECT_EQ(h[2].error, "connection refused");
  h = ms.health(4'500);  // n2 silent for 3.5 s
  EXPECT_EQ(h[1].state, member_state::down);
  EXPECT_FALSE(h[1].ready);
  ms.refused(2, "shard count differs", 5'000);
  EXPECT_EQ(ms.health(5'000)[2].state, member_state::refused);
  ms.answered(2, false, 6'000);
  EXPECT_EQ(ms.health(6'000)[2].state, member_state::up);
}

TEST(membership_test, a_member_served_by_a_standby_is_reached_where_the_standby_answered) {
  std::vector<member> all{{"n1", "10.0.0.1:7000"}, {"n2", "10.0.0.2:7000"}};
  membership ms{cluster_state::found(all, 16), all[0], std::chrono::milliseconds(3000)};
  EXPECT_EQ(ms.api_address(1), "") << "no port known before it answered";
  ms.answered(1, true, 1'000, 8443);
  EXPECT_EQ(ms.api_address(1), "10.0.0.2:8443");
  EXPECT_EQ(ms.peer_address(1), "10.0.0.2:7000");
  ms.failed(1, "connection refused");
  ms.answered(1, true, 2'000, 9443, "10.0.0.3:7011");  // its standby on another host
  EXPECT_EQ(ms.api_address(1), "10.0.0.3:9443");
  EXPECT_EQ(ms.peer_address(1), "10.0.0.3:7011");
  EXPECT_EQ(ms.health(2'000)[1].serving_address, "10.0.0.3:7011");
  ms.answered(1, true, 3'000, 8443);  // the member itself again
  EXPECT_EQ(ms.api_address(1), "10.0.0.2:8443");
  EXPECT_EQ(ms.peer_address(1), "10.0.0.2:7000");
}

TEST(parse_members, names_repeat_only_where_allowed_and_addresses_never) {
  EXPECT_EQ(parse_members("a=h:1,a=h:2").error, "member name \"a\" appears twice");
  auto standbys = parse_members("a=h:1,a=h:2,b=h:3", true);
  EXPECT_EQ(standbys.error, "");
  EXPECT_EQ(standbys.members.size(), 3u);
  EXPECT_EQ(parse_members("a=h:1,b=h:1").error, "address \"h:1\" appears twice");
  EXPECT_EQ(parse_members(std::string(300, 'x')).error.size(), std::string("member \"\" is not name=host:port").size() + 128)
      << "the bad item is quoted up to 128 characters";
}

}  // namespace
}  // namespace healthtwin::cluster
