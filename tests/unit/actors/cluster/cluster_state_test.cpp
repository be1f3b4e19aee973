// The replicated cluster state: founding, hand-offs, member-list changes,
// merging in any order, its persisted form, and the membership built on it.

#include "actors/cluster/cluster_state.hpp"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

#include "actors/cluster/membership.hpp"
#include "tests/unit/actors/cluster/members.hpp"

namespace healthtwin::cluster {
namespace {

TEST(cluster_state_test, a_founded_cluster_places_shards_by_rendezvous_at_version_zero) {
  auto all = members_named({"n0", "n1", "n2"});
  auto s = cluster_state::found(all, 64);
  shard_map expected{all, 64};
  ASSERT_EQ(s.shards(), 64u);
  for (uint32_t sh = 0; sh < 64; ++sh) {
    EXPECT_EQ(s.owner(sh).member, all[expected.owner(sh)].name);
    EXPECT_EQ(s.owner(sh).version, 0u);
  }
  // The same names in another order found the same cluster.
  auto again = cluster_state::found(members_named({"n2", "n0", "n1"}), 64);
  EXPECT_EQ(again.founding(), s.founding());
  EXPECT_EQ(again.owners(), s.owners());
  EXPECT_TRUE(s.incompatible(again).empty());
  EXPECT_NE(cluster_state::found(members_named({"n0", "n1"}), 64).founding(), s.founding());
  EXPECT_FALSE(s.incompatible(cluster_state::found(all, 32)).empty());
  EXPECT_FALSE(s.incompatible(cluster_state::found(members_named({"n0", "n1"}), 64)).empty());
}

TEST(cluster_state_test, a_new_member_list_moves_only_the_shards_whose_owner_changes) {
  auto three = members_named({"n0", "n1", "n2"});
  auto four = members_named({"n0", "n1", "n2", "n3"});
  auto before = cluster_state::placement(three, 1024);
  auto after = cluster_state::placement(four, 1024);
  size_t moved = 0;
  for (uint32_t s = 0; s < 1024; ++s)
    if (before[s] != after[s]) {
      EXPECT_EQ(after[s], "n3") << "shard " << s << " moved between old members";
      ++moved;
    }
  EXPECT_GT(moved, 1024u / 4 * 70 / 100);
  EXPECT_LT(moved, 1024u / 4 * 130 / 100);
  // Removing n1 moves n1's shards and nothing else.
  auto without = cluster_state::placement(members_named({"n0", "n2", "n3"}), 1024);
  for (uint32_t s = 0; s < 1024; ++s)
    if (after[s] != "n1")
      EXPECT_EQ(without[s], after[s]) << "shard " << s;
    else
      EXPECT_NE(without[s], "n1");
}

TEST(cluster_state_test, merging_takes_the_newer_member_list_and_each_shards_newer_owner) {
  auto all = members_named({"n0", "n1", "n2"});
  auto base = cluster_state::found(all, 16);
  auto a = base, b = base;
  a.hand_over(3, "n2");  // version 1
  a.hand_over(3, "n0");  // version 2
  b.hand_over(5, "n1");  // version 1
  b.set_members(members_named({"n0", "n1", "n2", "n3"}));
  auto ab = a, ba = b;
  EXPECT_TRUE(ab.merge(b));
  EXPECT_TRUE(ba.merge(a));
  EXPECT_EQ(ab, ba);  // the same, in either order
  EXPECT_EQ(ab.digest(), ba.digest());
  EXPECT_EQ(ab.owner(3).member, "n0");
  EXPECT_EQ(ab.owner(3).version, 2u);
  EXPECT_EQ(ab.owner(5).member, "n1");
  EXPECT_EQ(ab.members().size(), 4u);
  EXPECT_EQ(ab.members_version(), 1u);
  EXPECT_FALSE(ab.merge(a));  // nothing newer: no change
  EXPECT_FALSE(ab.merge(base));  // an older state changes nothing
  EXPECT_NE(base.digest(), ab.digest());
}

TEST(cluster_state_test, changes_converge_whatever_order_they_arrive_in) {
  auto all = members_named({"n0", "n1", "n2", "n3"});
  auto base = cluster_state::found(all, 32);
  // Each shard changes hands a few times; each step is a state one member saw.
  std::vector<cluster_state> steps;
  auto cur = base;
  std::mt19937 rng{7};
  for (int i = 0; i < 40; ++i) {
    cur.hand_over(rng() % 32, all[rng() % 4].name);
    if (i % 10 == 0)
      cur.set_members(all);
    steps.push_back(cur);
  }
  for (int trial = 0; trial < 5; ++trial) {
    std::shuffle(steps.begin(), steps.end(), rng);
    auto merged = base;
    for (auto& s : steps)
      merged.merge(s);
    EXPECT_EQ(merged, cur);
  }
}

TEST(cluster_state_test, its_persisted_form_round_trips_and_bad_records_name_the_field) {
  auto s = cluster_state::found(members_named({"n0", "n1"}), 8);
  s.hand_over(2, "n1");
  s.set_members(members_named({"n0", "n1", "n2"}));
  std::string error;
  auto back = cluster_state::decode(s.encode(), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(*back, s);

  EXPECT_FALSE(cluster_state::decode("\xff\xff garbage", error));
  EXPECT_EQ(error, "does not parse");
  EXPECT_FALSE(cluster_state::decode(std::string{}, error));  // no shards, no owners
  EXPECT_NE(error.find("shards"), std::string::npos) << error;
}

TEST(membership_test, a_hand_off_changes_the_owner_everyone_asks_and_what_this_node_owns) {
  auto all = members_named({"n0", "n1", "n2"});
  auto founded = cluster_state::found(all, 64);
  std::vector<cluster_state> persisted;
  membership ms{founded, all[1], std::chrono::milliseconds(3000),
                [&](const cluster_state& s) {
                  persisted.push_back(s);
                  return std::string{};
                }};
  uint32_t mine = 0, theirs = 0;
  for (uint32_t s = 0; s < 64; ++s)
    (founded.owner(s).member == "n1" ? mine : theirs) = s;
  EXPECT_TRUE(ms.owns(mine));
  EXPECT_FALSE(ms.owns(theirs));

  std::string error;
  auto change = ms.update([&](cluster_state& s) { s.hand_over(mine, "n2"); }, error);
  ASSERT_TRUE(error.empty());
  EXPECT_TRUE(change.changed);
  EXPECT_EQ(change.lost, std::vector<uint32_t>{mine});
  EXPECT_TRUE(change.gained.empty());
  EXPECT_FALSE(ms.owns(mine));
  EXPECT_EQ(ms.map()->members()[ms.map()->owner(mine)].name, "n2");
  ASSERT_EQ(persisted.size(), 1u);  // persisted before it was published
  EXPECT_EQ(persisted.back(), ms.state());

  // A new member list: n3 is learnt with a new number, n0 is removed; the
  // numbers of known members stay.
  auto map_before = ms.map();
  change = ms.update([&](cluster_state& s) { s.set_members(members_named({"n1", "n2", "n3"})); },
                     error);
  auto map = ms.map();
  ASSERT_EQ(map->members().size(), 4u);
  for (uint32_t m = 0; m < 3; ++m)
    EXPECT_EQ(map->members()[m].name, map_before->members()[m].name);
  EXPECT_EQ(map->members()[3].name, "n3");
  EXPECT_FALSE(map->listed(0));
  EXPECT_TRUE(map->listed(3));
  EXPECT_EQ(ms.health(0).size(), 4u);

  // A persisting failure changes nothing.
  membership failing{founded, all[1], std::chrono::milliseconds(3000),
                     [](const cluster_state&) { return std::string{"disk full"}; }};
  change = failing.update([&](cluster_state& s) { s.hand_over(mine, "n2"); }, error);
  EXPECT_EQ(error, "disk full");
  EXPECT_FALSE(change.changed);
  EXPECT_TRUE(failing.owns(mine));
  EXPECT_EQ(failing.state(), founded);
}

TEST(membership_test, a_node_that_joins_takes_the_clusters_state_and_owns_nothing_yet) {
  auto three = members_named({"n0", "n1", "n2"});
  auto mine = cluster_state::found(members_named({"n0", "n1", "n2", "n3"}), 64);
  membership ms{mine, {"n3", "n3:7000"}, std::chrono::milliseconds(3000)};
  auto theirs = cluster_state::found(three, 64);
  EXPECT_FALSE(mine.incompatible(theirs).empty());
  std::string error;
  auto change = ms.adopt(theirs, error);
  EXPECT_TRUE(change.changed);
  EXPECT_TRUE(change.gained.empty());
  EXPECT_FALSE(change.lost.empty());
  for (uint32_t s = 0; s < 64; ++s)
    EXPECT_FALSE(ms.owns(s));
  auto map = ms.map();
  EXPECT_EQ(map->members()[ms.self()].name, "n3");
  EXPECT_FALSE(map->listed(ms.self()));
  EXPECT_EQ(ms.founding(), theirs.founding());
}

}  // namespace
}  // namespace healthtwin::cluster
