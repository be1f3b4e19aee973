// The sequencer's directory, driven directly against a store: registry
// facts and windows read on first use, replayed numbers merged with the
// stored window, dirty windows taken by checkpoints, shards forgotten.
#include <gtest/gtest.h>

#include "actors/ingest/device_directory.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/key_codec.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;
using verdict = models::sequence_window::verdict;

namespace {

const std::string d1 = "tenants/h1/devices/d1", p1 = "tenants/h1/patients/p1";

class device_directory_test : public healthtwin::testing::store_fixture {
protected:
  void SetUp() override {
    store_fixture::SetUp();
    registry_.emplace(db());
    dir_.emplace(db(), *registry_);
    storage::device_record d;
    d.name = d1;
    d.type = models::device_type::pulse_oximeter;
    d.patient = p1;
    storage::write_batch wb{db()};
    registry_->put(wb, d);
    ASSERT_FALSE(db().write(wb, true));
  }

  // Stores a window for `name` as a checkpoint writes it.
  void store_window(const std::string& name, std::initializer_list<uint64_t> seen) {
    models::sequence_window w;
    for (auto s : seen)
      w.admit(s);
    internal::SequenceWindowState state;
    state.set_highest(w.highest());
    for (auto bits : w.seen_bits())
      state.add_seen(bits);
    storage::write_batch wb{db()};
    auto shard = storage::key_codec::window_shard(name, db().shards());
    wb.put(storage::column::twins, storage::key_codec::window_key(shard, name), state.SerializeAsString());
    ASSERT_FALSE(db().write(wb, true));
  }

  std::optional<storage::registry> registry_;
  std::optional<device_directory> dir_;
};

}  // namespace

TEST_F(device_directory_test, a_lookup_reads_the_registry_and_the_stored_window_once) {
  store_window(d1, {1, 2, 3});
  auto e = dir_->lookup(d1);
  ASSERT_TRUE(e && *e);
  EXPECT_EQ((*e)->type, models::device_type::pulse_oximeter);
  EXPECT_EQ((*e)->patient, p1);
  EXPECT_EQ((*e)->window.check(2), verdict::duplicate);
  EXPECT_EQ((*e)->window.check(4), verdict::accept);
  (*e)->window.admit(4);
  auto again = dir_->lookup(d1);  // from memory: the admitted 4 is there
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *e);
  EXPECT_EQ((*again)->window.check(4), verdict::duplicate);
  auto unknown = dir_->lookup("tenants/h1/devices/none");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(*unknown, nullptr);
}

TEST_F(device_directory_test, numbers_a_replay_admitted_are_merged_with_the_stored_window_on_first_lookup) {
  store_window(d1, {1, 2});
  auto* replayed = dir_->lookup_for_replay(d1);  // reads nothing
  EXPECT_FALSE(replayed->loaded);
  replayed->window.admit(5);
  auto e = dir_->lookup(d1);
  ASSERT_TRUE(e && *e);
  EXPECT_TRUE((*e)->loaded);
  for (uint64_t s : {1, 2, 5})
    EXPECT_EQ((*e)->window.check(s), verdict::duplicate) << s;
  EXPECT_EQ((*e)->window.check(3), verdict::accept);
}

TEST_F(device_directory_test, a_replay_past_a_reset_does_not_merge_the_older_stored_window) {
  store_window(d1, {1, 2, 1000});
  auto* replayed = dir_->lookup_for_replay(d1);
  replayed->stored_superseded = true;  // the replay met a sequence reset
  replayed->window.admit(1);
  auto e = dir_->lookup(d1);
  ASSERT_TRUE(e && *e);
  EXPECT_EQ((*e)->window.check(2), verdict::accept);
  EXPECT_EQ((*e)->window.check(1), verdict::duplicate);
}

TEST_F(device_directory_test, checkpoints_take_changed_windows_once_and_get_them_back_when_they_fail) {
  auto e = *dir_->lookup(d1);
  auto part = *dir_->lookup_part(p1, "tenants/h1/devices/d9");
  dir_->mark_dirty(d1, e);
  dir_->mark_dirty(d1, e);  // once
  dir_->mark_dirty(storage::key_codec::part_window_name(p1, "tenants/h1/devices/d9"), part);
  auto taken = dir_->take_dirty();
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_TRUE(dir_->take_dirty().empty());
  dir_->restore_dirty(taken);  // the checkpoint failed
  EXPECT_EQ(dir_->take_dirty().size(), 2u);
  // Only a hand-off's shards when it asks for them.
  dir_->mark_dirty(d1, e);
  std::vector<bool> none(db().shards(), false);
  EXPECT_TRUE(dir_->take_dirty(&none).empty());
  std::vector<bool> all(db().shards(), true);
  EXPECT_EQ(dir_->take_dirty(&all).size(), 1u);
}

TEST_F(device_directory_test, forgetting_shards_drops_their_entries_and_pending_windows) {
  auto e = *dir_->lookup(d1);
  dir_->mark_dirty(d1, e);
  std::vector<bool> in(db().shards(), false);
  in[storage::key_codec::window_shard(d1, db().shards())] = true;
  dir_->forget_shards(in);
  EXPECT_EQ(dir_->find(d1), nullptr);
  EXPECT_TRUE(dir_->take_dirty().empty());
  EXPECT_EQ(dir_->size(), 0u);
}

// Bounding the directory: an entry goes only once it is clean (its window
// stored by a checkpoint) and untouched since a checkpoint written at
// least the idle time ago; a dirty one stays however old.
TEST_F(device_directory_test, cold_clean_entries_are_evicted_after_a_checkpoint_and_read_again) {
  using namespace std::chrono;
  const std::string d2 = "tenants/h1/devices/d2";
  storage::device_record d;
  d.name = d2;
  d.type = models::device_type::bedside_monitor;
  storage::write_batch wb{db()};
  registry_->put(wb, d);
  ASSERT_FALSE(db().write(wb, true));
  store_window(d1, {1, 2, 3});
  auto t0 = steady_clock::now();
  auto e1 = dir_->lookup(d1);
  auto e2 = dir_->lookup(d2);
  ASSERT_TRUE(e1 && *e1 && e2 && *e2);
  (*e1)->commit_stamp = 1;
  (*e2)->commit_stamp = 1;
  (*e2)->window.admit(7);
  dir_->mark_dirty(d2, *e2);  // changed, not stored yet
  EXPECT_EQ(dir_->evict_cold(t0 + hours(1), minutes(10), 1'000'000), 0u);  // no checkpoint yet

  dir_->checkpoint_written(2, t0);  // commits up to 1 are stored (d2 is still dirty)
  EXPECT_EQ(dir_->evict_cold(t0 + minutes(5), minutes(10), 1'000'000), 0u);  // not idle long enough
  EXPECT_EQ(dir_->evict_cold(t0 + minutes(11), minutes(10), 1'000'000), 1u);
  EXPECT_EQ(dir_->size(), 1u);
  EXPECT_EQ(dir_->find(d1), nullptr);
  EXPECT_NE(dir_->find(d2), nullptr);  // dirty: kept

  auto again = dir_->lookup(d1);  // read again: registry facts and the stored window
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->patient, p1);
  EXPECT_EQ((*again)->window.admit(3), verdict::duplicate);
  EXPECT_EQ((*again)->window.admit(4), verdict::accept);

  // Once taken by a checkpoint that was written, d2 goes too; d1, just
  // touched again (stamp 3), stays.
  (*again)->commit_stamp = 3;
  auto taken = dir_->take_dirty();
  ASSERT_EQ(taken.size(), 1u);
  dir_->checkpoint_written(3, t0 + minutes(12));
  EXPECT_EQ(dir_->evict_cold(t0 + minutes(23), minutes(10), 1'000'000), 1u);
  EXPECT_EQ(dir_->find(d2), nullptr);
  EXPECT_NE(dir_->find(d1), nullptr);
}
