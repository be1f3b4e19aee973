// What a member keeps of the cluster in its store: the state's bytes and
// the drops a hand-off still owes, both surviving a restart.

#include "storage/cluster_records.hpp"

#include <gtest/gtest.h>

#include "storage/errc.hpp"
#include "storage/store.hpp"
#include "tests/unit/storage/store_fixture.hpp"

namespace healthtwin::storage {
namespace {

using cluster_records_test = testing::store_fixture;

TEST_F(cluster_records_test, the_cluster_state_is_absent_until_written_and_survives_a_restart) {
  auto none = load_cluster_record(db());
  ASSERT_TRUE(none) << describe(none.error());
  EXPECT_FALSE(*none);
  ASSERT_FALSE(persist_cluster_record(db(), std::string("\0state\1", 7)));
  reopen();
  auto back = load_cluster_record(db());
  ASSERT_TRUE(back && *back);
  EXPECT_EQ(**back, std::string("\0state\1", 7));
  auto raw = db().get(column::meta, cluster_state_key);  // where operators find it
  ASSERT_TRUE(raw && *raw);
}

TEST_F(cluster_records_test, owed_drops_are_kept_until_cleared) {
  auto none = load_drops_owed(db());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  ASSERT_FALSE(note_drops_owed(db(), {3, 0, 15}));
  reopen();
  auto owed = load_drops_owed(db());
  ASSERT_TRUE(owed);
  EXPECT_EQ(*owed, (std::vector<uint32_t>{3, 0, 15}));
  ASSERT_FALSE(note_drops_owed(db(), {}));
  auto cleared = load_drops_owed(db());
  ASSERT_TRUE(cleared);
  EXPECT_TRUE(cleared->empty());
}

TEST_F(cluster_records_test, owed_drops_that_name_no_shard_of_this_store_are_left_out) {
  write_batch wb{db()};
  wb.put(column::meta, "cluster_drops", "2,x,16,,7 ,99999999999,5");  // 16 shards here
  ASSERT_FALSE(db().write(wb, true));
  auto owed = load_drops_owed(db());
  ASSERT_TRUE(owed);
  EXPECT_EQ(*owed, (std::vector<uint32_t>{2, 5}));
}

}  // namespace
}  // namespace healthtwin::storage
