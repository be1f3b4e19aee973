// The erasure purger, driven directly: an erasure is purged only once a
// checkpoint at or after its log position was taken.
#include <gtest/gtest.h>

#include <prometheus/registry.h>

#include "actors/ingest/erasure_purger.hpp"
#include "storage/erasure.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;

namespace {

class erasure_purger_test : public healthtwin::testing::store_fixture {
protected:
  // Marks a purge owed for `patient`, as the erasure's registry commit does.
  void owe(const std::string& patient) {
    storage::write_batch b{db()};
    storage::note_purge_owed(b, db(), patient);
    ASSERT_FALSE(db().write(b, true));
  }
  size_t owed() {
    auto n = storage::purges_owed(db());
    EXPECT_TRUE(n);
    return n ? *n : 0;
  }
};

}  // namespace

TEST_F(erasure_purger_test, an_erasure_waits_for_a_checkpoint_at_or_after_its_position) {
  prometheus::Registry metrics;
  ingest_probe probe{metrics};
  const std::string p1 = "tenants/h1/patients/p1", p2 = "tenants/h1/patients/p2";
  owe(p1);
  owe(p2);
  // Each purger below stands for one run of the sequencer: finish() purges
  // what was handed over, then stops; what still waits is dropped.
  auto run = [&](uint64_t checkpoint) {
    erasure_purger purger{db(), probe};
    purger.after_checkpoint(p1, 10);
    purger.after_checkpoint(p2, 20);
    purger.checkpointed(checkpoint);
    bool waiting = purger.waiting();
    purger.finish();
    return waiting;
  };
  EXPECT_TRUE(run(9));  // before both: nothing purged
  EXPECT_EQ(owed(), 2u);
  EXPECT_TRUE(run(10));  // covers p1 only
  EXPECT_EQ(owed(), 1u);  // p2's purge is still owed
  {
    erasure_purger purger{db(), probe};
    purger.after_checkpoint(p2, 20);
    purger.checkpointed(25);
    EXPECT_FALSE(purger.waiting());
  }  // destroying it purges what was handed over
  EXPECT_EQ(owed(), 0u);
}
