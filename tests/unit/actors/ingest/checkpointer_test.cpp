// The checkpointer's phases, driven directly with an injected clock and
// shards played by the test: no actors, no sleeping.
#include <gtest/gtest.h>

#include "actors/ingest/checkpointer.hpp"
#include "storage/ingest_log.hpp"
#include "tests/unit/actors/ingest/ingest_parts_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;
using namespace std::chrono_literals;

namespace {

const std::string d1 = "tenants/h1/devices/d1";

class checkpointer_test : public healthtwin::testing::ingest_parts_fixture {
protected:
  void SetUp() override {
    ingest_parts_fixture::SetUp();
    log_.emplace(db());
    cp_.emplace(checkpointer::parts{db(), *log_, *dir_, *fence_, probe_,
                                    [this](uint32_t shard, const checkpoint_round_ptr& r) {
                                      asked_.emplace_back(shard, r);
                                    },
                                    [this] { ++wakes_; }},
                checkpoint_schedule{30s, 1'000, 2s, shards_, [this] { return now_; }});
    registry({device(d1)});
  }

  // The device took `sequences` since the last checkpoint (as a commit does).
  void admit(std::initializer_list<uint64_t> sequences) {
    auto e = dir_->lookup(d1);
    ASSERT_TRUE(e && *e);
    for (auto s : sequences)
      (*e)->window.admit(s);
    dir_->mark_dirty(d1, *e);
  }

  // The asked shards snapshot their twins; the last one ends the round.
  void shards_snapshot(bool ok = true) {
    for (auto& [shard, round] : asked_) {
      if (!ok)
        round->failed = true;
      if (round->shards_left.fetch_sub(1) == 1)
        round->on_done(!round->failed.load());
    }
    asked_.clear();
  }

  models::sequence_window stored_window() {
    models::sequence_window w;
    EXPECT_FALSE(dir_->load_window(d1, w));
    return w;
  }

  checkpoint_schedule::clock::time_point now_{std::chrono::hours(1)};
  std::optional<storage::ingest_log> log_;
  std::optional<checkpointer> cp_;
  std::vector<std::pair<uint32_t, checkpoint_round_ptr>> asked_;
  int wakes_ = 0;
};

}  // namespace

TEST_F(checkpointer_test, a_checkpoint_snapshots_over_the_spread_then_writes_windows_and_position) {
  admit({1, 2, 3});
  ASSERT_TRUE(cp_->due(7, 0));
  cp_->start(7, 100);
  EXPECT_FALSE(cp_->idle());
  EXPECT_FALSE(cp_->due(8, 5'000)) << "one at a time";
  EXPECT_EQ(asked_.size(), 1u);  // the first shard at once
  now_ += 1s;                     // half the spread
  cp_->advance(100);
  EXPECT_EQ(asked_.size(), shards_ / 2);
  EXPECT_TRUE(cp_->asking());
  now_ += 1s;
  cp_->advance(100);
  EXPECT_EQ(asked_.size(), shards_);
  EXPECT_FALSE(cp_->asking());
  EXPECT_FALSE(cp_->wants_turn());
  shards_snapshot();
  EXPECT_TRUE(cp_->wants_turn());
  EXPECT_EQ(wakes_, 1);
  admit({4});                 // committed meanwhile: goes with the next one
  cp_->complete(120);         // the helper thread writes; then the result is taken
  EXPECT_TRUE(cp_->idle());
  EXPECT_EQ(cp_->checkpointed(), 7u);
  EXPECT_EQ(cp_->accepted_at_checkpoint(), 100u);
  EXPECT_EQ(*log_->checkpoint(), 7u);
  EXPECT_EQ(stored_window().highest(), 3u);
  // Not due again until the interval passed, or enough readings came, or
  // the log moved on.
  EXPECT_FALSE(cp_->due(9, 0));
  EXPECT_TRUE(cp_->due(9, 1'000));
  now_ += 30s;
  EXPECT_FALSE(cp_->due(7, 0)) << "nothing new in the log";
  EXPECT_TRUE(cp_->due(9, 0));
  cp_->start(9, 120);
  cp_->hurry();
  shards_snapshot();
  cp_->complete(120);
  EXPECT_EQ(stored_window().highest(), 4u);
}

TEST_F(checkpointer_test, a_failed_snapshot_keeps_the_windows_for_the_next_checkpoint) {
  admit({1, 2});
  cp_->start(3, 2);
  cp_->hurry();
  shards_snapshot(false);
  cp_->advance(2);
  EXPECT_TRUE(cp_->idle());
  EXPECT_EQ(cp_->checkpointed(), 0u);
  EXPECT_EQ(*log_->checkpoint(), 0u);
  EXPECT_EQ(stored_window().highest(), 0u);
  cp_->request_now();
  ASSERT_TRUE(cp_->due(3, 0));
  cp_->start(3, 2);
  cp_->hurry();
  shards_snapshot();
  cp_->complete(2);
  EXPECT_EQ(cp_->checkpointed(), 3u);
  EXPECT_EQ(stored_window().highest(), 2u) << "the failed checkpoint's windows were lost";
}

TEST_F(checkpointer_test, a_hand_offs_checkpoint_writes_its_shards_and_leaves_the_log_alone) {
  admit({1, 2});
  auto shard = fence_->shard_of(d1);
  std::optional<caf::error> heard;
  cp_->start(5, 2, {shard}, [&](caf::error e) { heard = std::move(e); });
  ASSERT_EQ(asked_.size(), 1u);  // its shards, at once
  EXPECT_EQ(asked_[0].first, shard);
  EXPECT_FALSE(cp_->asking());
  shards_snapshot();
  cp_->complete(2);
  ASSERT_TRUE(heard);
  EXPECT_FALSE(*heard);
  EXPECT_EQ(stored_window().highest(), 2u);
  EXPECT_EQ(*log_->checkpoint(), 0u);
  EXPECT_EQ(cp_->checkpointed(), 0u);
  // Failing, it says why.
  heard.reset();
  cp_->start(5, 2, {shard}, [&](caf::error e) { heard = std::move(e); });
  shards_snapshot(false);
  cp_->advance(2);
  ASSERT_TRUE(heard);
  EXPECT_TRUE(*heard);
}
