// Three stores, each a replica of one Raft group: a write on the leader's
// store is acknowledged once a majority has it and is then in every store;
// a follower's store refuses writes; a replica that restarts skips what it
// had applied and catches up on what it missed; without a majority a write
// fails within its timeout and reaches no store.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "services/peer/raft_group.hpp"
#include "services/peer/replicated_store.hpp"
#include "storage/errc.hpp"
#include "storage/store.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/services/peer/raft_test_support.hpp"

namespace healthtwin::services {
namespace {

using namespace std::chrono_literals;
using storage::column;
using testing::eventually;

class replicated_store_test : public ::testing::Test {
protected:
  struct replica {
    std::unique_ptr<storage::store> store;
    std::unique_ptr<replicated_store> machine;
    std::unique_ptr<raft_group> group;
  };

  void TearDown() override {
    for (int i = 0; i < 3; ++i)
      stop(i);
  }

  void start(int i) {
    auto& r = replicas_[i];
    storage::store_settings ss;
    ss.data_dir = (dir_.path() / ("store-" + std::to_string(i))).string();
    ss.shards = 16;
    auto opened = storage::store::open(ss);
    ASSERT_TRUE(opened) << storage::describe(opened.error());
    r.store = std::move(*opened);
    opened_index_[i] = r.store->replicated_index();
    r.machine = std::make_unique<replicated_store>(*r.store, 2s);
    r.store->replicate_through(r.machine.get());
    raft_group_settings gs;
    gs.group = 9;
    gs.members = net_.peers;
    gs.dir = (dir_.path() / ("raft-" + std::to_string(i))).string();
    gs.election_timeout = 300ms;
    gs.heartbeat = 50ms;
    gs.snapshot_threshold = 64;
    gs.snapshot_trailing = 16;
    gs.entry_key.emplace();
    gs.entry_key->fill(7);
    std::string why;
    r.group = raft_group::start(gs, *net_.tunnels[i], *r.machine, why);
    ASSERT_TRUE(r.group) << why;
    r.machine->attach(r.group.get());
  }

  void stop(int i) {
    auto& r = replicas_[i];
    r.group.reset();  // first: its state machine writes to the store
    r.machine.reset();
    r.store.reset();
  }

  int leader() {
    int found = -1;
    eventually(
        [&] {
          for (int i = 0; i < 3; ++i)
            if (replicas_[i].group && replicas_[i].group->status().leading)
              return (found = i) >= 0;
          return false;
        },
        10s);
    return found;
  }

  // All three started, "before" written and on follower f (index
  // `applied`), then f stopped.
  void stop_a_follower_that_has(int& f, uint64_t& applied) {
    for (int i = 0; i < 3; ++i)
      start(i);
    int l = leader();
    ASSERT_GE(l, 0);
    f = (l + 1) % 3;
    ASSERT_FALSE(put(l, "before", "1"));
    ASSERT_TRUE(holds(f, "before", "1"));
    applied = replicas_[f].store->replicated_index();
    stop(f);
  }

  caf::error put(int i, const std::string& key, const std::string& value) {
    storage::write_batch wb{*replicas_[i].store};
    wb.put(column::registry, key, value);
    wb.put(column::series, key + "/s", value);
    return replicas_[i].store->write(wb, true);
  }

  std::optional<std::string> get(int i, const std::string& key) {
    auto v = replicas_[i].store->get(column::registry, key);
    return v ? *v : std::nullopt;
  }

  bool holds(int i, const std::string& key, const std::string& value) {
    return eventually([&] { return get(i, key) == value; }, 10s);
  }

  testing::temp_dir dir_;
  testing::three_tunnels net_{dir_.path() / "pki"};
  std::array<replica, 3> replicas_;
  std::array<uint64_t, 3> opened_index_{};
};

TEST_F(replicated_store_test, a_write_on_the_leader_reaches_every_replica) {
  for (int i = 0; i < 3; ++i)
    start(i);
  int l = leader();
  ASSERT_GE(l, 0);
  for (int k = 0; k < 100; ++k)
    ASSERT_FALSE(put(l, "device-" + std::to_string(k), "v" + std::to_string(k)));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(holds(i, "device-99", "v99")) << "replica " << i;
    for (int k = 0; k < 100; ++k)
      EXPECT_EQ(get(i, "device-" + std::to_string(k)), "v" + std::to_string(k));
    auto s = replicas_[i].store->get(column::series, "device-5/s");
    ASSERT_TRUE(s);
    EXPECT_EQ(*s, std::optional<std::string>{"v5"}) << "every column family of the batch";
  }
  EXPECT_EQ(replicas_[l].store->replicated_index(), replicas_[(l + 1) % 3].store->replicated_index());
}

TEST_F(replicated_store_test, a_follower_refuses_writes_at_once) {
  for (int i = 0; i < 3; ++i)
    start(i);
  int l = leader();
  ASSERT_GE(l, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto err = put((l + 1) % 3, "device-1", "from a follower");
  EXPECT_EQ(err, storage::errc::no_quorum) << storage::describe(err);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(get(i, "device-1"), std::nullopt);
}

TEST_F(replicated_store_test, a_restarted_replica_skips_what_it_applied_and_catches_up) {
  int f = -1;
  uint64_t applied = 0;
  ASSERT_NO_FATAL_FAILURE(stop_a_follower_that_has(f, applied));
  // Fewer than the log keeps behind a snapshot (16 here).
  for (int k = 0; k < 10; ++k)
    ASSERT_FALSE(put(leader(), "while-away-" + std::to_string(k), "2"));
  start(f);
  EXPECT_EQ(opened_index_[f], applied) << "the index survives a restart";
  EXPECT_TRUE(holds(f, "while-away-9", "2"));
  EXPECT_EQ(get(f, "before"), "1");
  EXPECT_TRUE(replicas_[f].machine->apply_failure().empty());
}

// Not built yet: fetching the leader's files. A replica that missed more
// than the log keeps must not pretend to be current.
TEST_F(replicated_store_test, a_replica_behind_the_leaders_snapshot_applies_nothing_out_of_order) {
  int f = -1;
  uint64_t applied = 0;
  ASSERT_NO_FATAL_FAILURE(stop_a_follower_that_has(f, applied));
  for (int k = 0; k < 150; ++k)
    ASSERT_FALSE(put(leader(), "while-away-" + std::to_string(k), "2"));
  start(f);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(replicas_[f].store->replicated_index(), applied);
  EXPECT_EQ(get(f, "while-away-149"), std::nullopt);
  EXPECT_NE(replicas_[f].machine->apply_failure().find("needs a copy of the leader's store"), std::string::npos)
      << replicas_[f].machine->apply_failure();
  // The two others still form a majority and commit.
  EXPECT_FALSE(put(leader(), "after", "3"));
}

TEST_F(replicated_store_test, without_a_majority_a_write_fails_in_time_and_reaches_no_store) {
  for (int i = 0; i < 3; ++i)
    start(i);
  int l = leader();
  ASSERT_GE(l, 0);
  stop((l + 1) % 3);
  stop((l + 2) % 3);
  auto t0 = std::chrono::steady_clock::now();
  auto err = put(l, "alone", "x");
  EXPECT_EQ(err, storage::errc::no_quorum) << storage::describe(err);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  EXPECT_EQ(get(l, "alone"), std::nullopt) << "the leader applies only what a majority committed";
}

}  // namespace
}  // namespace healthtwin::services
