// The sequencer's inbox and its shard fence, driven directly.
#include <gtest/gtest.h>

#include "actors/ingest/job_queue.hpp"
#include "actors/ingest/shard_fence.hpp"

using namespace healthtwin::actors;
using namespace std::chrono_literals;

namespace {

ingest_job readings() {
  ingest_job j;
  j.done = [](ingest_result&&) {};
  return j;
}

}  // namespace

TEST(job_queue, readings_are_bounded_until_the_sequencer_takes_them) {
  job_queue q{100};
  auto a = readings(), b = readings(), c = readings();
  EXPECT_EQ(q.push_readings(a, 60), job_queue::verdict::queued);
  EXPECT_EQ(q.push_readings(b, 41), job_queue::verdict::overloaded);
  EXPECT_TRUE(b.done) << "a refused job is left to its caller";
  EXPECT_EQ(q.push_readings(b, 40), job_queue::verdict::queued);
  registry_job r{reset_device_sequence{"d"}, [](registry_result&&) {}};
  EXPECT_TRUE(q.push(r));  // other jobs do not count
  std::vector<sequencer_job> taken;
  ASSERT_TRUE(q.take(taken, 0ms, [] { return false; }));
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<registry_job>(taken[2]));
  EXPECT_EQ(q.push_readings(c, 100), job_queue::verdict::queued) << "taking frees the bound";
}

TEST(job_queue, once_stopped_nothing_is_queued_and_the_rest_is_drained) {
  job_queue q{100};
  auto a = readings(), b = readings();
  ASSERT_EQ(q.push_readings(a, 1), job_queue::verdict::queued);
  EXPECT_TRUE(q.stop());
  EXPECT_FALSE(q.stop());
  EXPECT_EQ(q.push_readings(b, 1), job_queue::verdict::stopping);
  shard_job s{shard_step{}, [](caf::error) {}};
  EXPECT_FALSE(q.push(s));
  EXPECT_TRUE(s.done);
  std::vector<sequencer_job> taken;
  ASSERT_TRUE(q.take(taken, 1h, [] { return false; }));  // returns at once: stopped
  EXPECT_EQ(taken.size(), 1u);
  taken.clear();
  EXPECT_FALSE(q.take(taken, 1h, [] { return false; }));
}

TEST(job_queue, the_wake_condition_ends_the_wait_without_jobs) {
  job_queue q{100};
  std::vector<sequencer_job> taken;
  ASSERT_TRUE(q.take(taken, 1h, [] { return true; }));
  EXPECT_TRUE(taken.empty());
}

TEST(shard_fence, a_shard_takes_writes_when_owned_and_not_fenced) {
  shard_fence single{16, {}};
  EXPECT_FALSE(single.clustered());
  EXPECT_TRUE(single.open(3));
  shard_fence member{16, [](uint32_t s) { return s % 2 == 0; }};
  EXPECT_TRUE(member.clustered());
  EXPECT_TRUE(member.open(2));
  EXPECT_FALSE(member.open(3));
  EXPECT_EQ(member.why_closed(3), "shard 3 belongs to another member now");
  member.fence({2, 4});
  EXPECT_FALSE(member.open(2));
  EXPECT_EQ(member.why_closed(4), "shard 4 is being handed to another member");
  member.lift({2});
  EXPECT_TRUE(member.open(2));
  EXPECT_FALSE(member.open(4));
  auto mask = member.mask({1, 4});
  EXPECT_EQ(std::count(mask.begin(), mask.end(), true), 2);
  EXPECT_TRUE(mask[4]);
}

TEST(shard_fence, a_change_for_a_closed_shard_is_told_to_move) {
  shard_fence member{16, [](uint32_t) { return false; }};
  auto err = member.closed("tenants/h1/patients/p1");
  EXPECT_EQ(err, ingest_errc::moving);
  shard_fence single{16, {}};
  EXPECT_FALSE(single.closed("tenants/h1/patients/p1"));
}
