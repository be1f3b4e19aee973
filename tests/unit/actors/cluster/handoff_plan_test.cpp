// The plan of a change of members, worked out without I/O: who hears of it
// and which shards move where, a step at a time.

#include "actors/cluster/handoff_plan.hpp"

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "tests/unit/actors/cluster/members.hpp"

namespace healthtwin::cluster {
namespace {

TEST(handoff_plan_test, members_of_both_lists_keep_the_current_order_and_take_new_addresses) {
  auto current = members_named({"n0", "n1", "n2"});
  std::vector<member> target{{"n1", "n1:7100"}, {"n3", "n3:7000"}};
  auto both = members_of_both(current, target);
  ASSERT_EQ(both.size(), 4u);
  EXPECT_EQ(both[0].name, "n0");
  EXPECT_EQ(both[1].name, "n1");
  EXPECT_EQ(both[1].address, "n1:7100");
  EXPECT_EQ(both[2].name, "n2");
  EXPECT_EQ(both[3].name, "n3");
  EXPECT_EQ(members_of_both(current, current), current);
}

TEST(handoff_plan_test, the_same_members_move_nothing) {
  auto all = members_named({"n0", "n1", "n2"});
  auto state = cluster_state::found(all, 64);
  EXPECT_TRUE(plan_handoff(state, all, 16).empty());
  EXPECT_TRUE(plan_handoff(state, members_named({"n2", "n1", "n0"}), 16).empty());
}

TEST(handoff_plan_test, a_new_member_receives_exactly_the_shards_placement_gives_it) {
  auto three = members_named({"n0", "n1", "n2"});
  auto four = members_named({"n0", "n1", "n2", "n3"});
  auto state = cluster_state::found(three, 256);
  auto placement = cluster_state::placement(four, 256);
  auto steps = plan_handoff(state, four, 8);
  ASSERT_FALSE(steps.empty());
  std::set<uint32_t> moved;
  for (auto& st : steps) {
    EXPECT_EQ(st.to, "n3");  // adding a member moves shards only to it
    EXPECT_NE(st.from, "n3");
    EXPECT_GE(st.shards.size(), 1u);
    EXPECT_LE(st.shards.size(), 8u);
    for (auto s : st.shards) {
      EXPECT_EQ(state.owner(s).member, st.from);
      EXPECT_TRUE(moved.insert(s).second) << "shard " << s << " moves twice";
    }
    EXPECT_TRUE(std::is_sorted(st.shards.begin(), st.shards.end()));
  }
  for (uint32_t s = 0; s < 256; ++s)
    EXPECT_EQ(moved.count(s) > 0, state.owner(s).member != placement[s]) << "shard " << s;
}

TEST(handoff_plan_test, steps_are_cut_at_the_step_size_per_pair_of_members) {
  auto state = cluster_state::found(members_named({"n0", "n1"}), 64);
  auto steps = plan_handoff(state, members_named({"n1"}), 5);  // n0 leaves: all of it to n1
  size_t from_n0 = 0;
  for (uint32_t s = 0; s < 64; ++s)
    from_n0 += state.owner(s).member == "n0";
  ASSERT_GT(from_n0, 5u);
  ASSERT_EQ(steps.size(), (from_n0 + 4) / 5);
  size_t total = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].from, "n0");
    EXPECT_EQ(steps[i].to, "n1");
    EXPECT_EQ(steps[i].shards.size(), i + 1 < steps.size() ? 5u : from_n0 - 5 * i);
    total += steps[i].shards.size();
  }
  EXPECT_EQ(total, from_n0);
}

TEST(handoff_plan_test, shards_already_handed_over_are_planned_from_their_current_owner) {
  auto three = members_named({"n0", "n1", "n2"});
  auto state = cluster_state::found(three, 32);
  // Shard 0 was handed to another member by an earlier, unfinished change.
  auto first = state.owner(0).member;
  auto other = first == "n0" ? "n1" : "n0";
  state.hand_over(0, other);
  auto steps = plan_handoff(state, three, 16);  // back to the placement over the same three
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0], (handoff_step{other, first, {0}}));
}

TEST(handoff_plan_test, shard_lists_read_as_logs_show_them) {
  EXPECT_EQ(shard_list({}), "");
  EXPECT_EQ(shard_list({7}), "7");
  EXPECT_EQ(shard_list({3, 4, 17}), "3,4,17");
}

}  // namespace
}  // namespace healthtwin::cluster
