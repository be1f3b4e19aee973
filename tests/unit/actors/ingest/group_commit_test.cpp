// Group commit, driven directly against a real store: what one commit of
// the ingest log holds, what each caller hears, and what reaches the twins.
#include <gtest/gtest.h>

#include "actors/ingest/group_commit.hpp"
#include "actors/models/twin_name.hpp"
#include "storage/ingest_log.hpp"
#include "tests/unit/actors/ingest/ingest_parts_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;

namespace {

const std::string p1 = "tenants/h1/patients/p1", p2 = "tenants/h1/patients/p2";
const std::string d1 = "tenants/h1/devices/d1", d2 = "tenants/h1/devices/d2";

class group_commit_test : public healthtwin::testing::ingest_parts_fixture {
protected:
  void SetUp() override {
    ingest_parts_fixture::SetUp();
    commit_.emplace(db(), *registry_, *dir_, *fence_, probe_,
                    [this](const committed_batch_ptr& b) { dispatched_.push_back(b); });
    registry({patient(p1), patient(p2), device(d1), device(d2), assign_device{d1, p1}});
  }

  // A request of one group per device: {device, {sequence...}} of heart rates.
  struct request {
    ingest_job job;
    std::optional<ingest_result> heard;
  };
  std::unique_ptr<request> readings(std::vector<std::pair<std::string, std::vector<uint64_t>>> groups,
                                    models::metric m = models::metric::heart_rate) {
    auto r = std::make_unique<request>();
    uint32_t index = 0, group = 0;
    for (auto& [device, sequences] : groups) {
      ingest_group g;
      g.device = device;
      g.group = group++;
      g.first_index = index;
      for (auto s : sequences)
        g.readings.push_back({s, 1'000 + static_cast<int64_t>(s), 70.0, index++, m});
      r->job.groups.push_back(std::move(g));
    }
    r->job.done = [p = r.get()](ingest_result&& res) { p->heard = std::move(res); };
    return r;
  }

  uint64_t logged() {
    storage::ingest_log log{db()};
    return *log.last_position();
  }

  std::optional<group_commit> commit_;
  std::vector<committed_batch_ptr> dispatched_;
};

}  // namespace

TEST_F(group_commit_test, requests_taken_together_are_one_record_acknowledged_after_the_write) {
  auto a = readings({{d1, {1, 2}}, {d2, {1}}});
  auto b = readings({{d1, {3}}});
  commit_->add(a->job);
  commit_->add(b->job);
  EXPECT_FALSE(a->heard) << "acknowledged before the write";
  EXPECT_EQ(logged(), 0u);
  commit_->flush();
  ASSERT_TRUE(a->heard && b->heard);
  EXPECT_EQ(a->heard->accepted, 3u);
  EXPECT_EQ(b->heard->accepted, 1u);
  EXPECT_TRUE(a->heard->rejections.empty());
  EXPECT_EQ(logged(), 1u);
  EXPECT_EQ(commit_->position(), 1u);
  EXPECT_EQ(commit_->accepted(), 4u);
  // One batch, one entry per device, the device's readings in order and
  // attributed to its patient.
  ASSERT_EQ(dispatched_.size(), 1u);
  auto& entries = dispatched_[0]->entries;
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].device, d1);
  EXPECT_EQ(entries[0].patient, p1);
  ASSERT_EQ(entries[0].readings.size(), 3u);
  EXPECT_EQ(entries[0].readings[2].sequence, 3u);
  EXPECT_EQ(entries[1].device, d2);
  EXPECT_TRUE(entries[1].patient.empty());
  EXPECT_EQ(dispatched_[0]->position, 1u);
}

TEST_F(group_commit_test, duplicates_in_one_commit_and_across_commits_are_rejected_by_field) {
  auto a = readings({{d2, {5}}});
  auto b = readings({{d2, {4, 5}}});  // 5: already taken in this commit
  commit_->add(a->job);
  commit_->add(b->job);
  commit_->flush();
  ASSERT_EQ(b->heard->rejections.size(), 1u);
  EXPECT_EQ(b->heard->rejections[0].field, "devices[0].sequence[1]");
  EXPECT_EQ(b->heard->rejections[0].reason, rejection_reason::duplicate);
  auto c = readings({{d2, {4, 6}}});  // 4: committed before
  commit_->add(c->job);
  commit_->flush();
  EXPECT_EQ(c->heard->accepted, 1u);
  ASSERT_EQ(c->heard->rejections.size(), 1u);
  EXPECT_EQ(c->heard->rejections[0].index, 0u);
  EXPECT_EQ(logged(), 2u);
}

TEST_F(group_commit_test, a_commit_of_nothing_but_rejections_writes_nothing_and_still_answers) {
  auto r = readings({{"tenants/h1/devices/nobody", {1}}, {d1, {0}}, {d2, {1}}});
  r->job.groups[2].readings[0].metric = models::metric::inhaler_actuation;
  commit_->add(r->job);
  commit_->flush();
  ASSERT_TRUE(r->heard);
  EXPECT_FALSE(r->heard->error);
  EXPECT_EQ(r->heard->accepted, 0u);
  ASSERT_EQ(r->heard->rejections.size(), 3u);
  EXPECT_EQ(r->heard->rejections[0].reason, rejection_reason::unknown_device);
  EXPECT_EQ(r->heard->rejections[0].field, "devices[0]");
  EXPECT_EQ(r->heard->rejections[1].reason, rejection_reason::invalid_sequence);
  EXPECT_EQ(r->heard->rejections[2].reason, rejection_reason::metric_not_supported);
  EXPECT_EQ(r->heard->rejections[2].field, "devices[2].metric[0]");
  EXPECT_EQ(logged(), 0u);
  EXPECT_TRUE(dispatched_.empty());
}

TEST_F(group_commit_test, a_clinicians_input_joins_the_commit_as_an_entry_of_its_patient) {
  input_job known{patient_input{p2, "nurse-1", nullptr, {reading{1, 1'000, 0, models::metric::consciousness}}},
                  nullptr, {}};
  std::optional<registry_result> heard_known, heard_unknown;
  known.done = [&](registry_result&& r) { heard_known = std::move(r); };
  input_job unknown{patient_input{"tenants/h1/patients/nobody", "nurse-1", nullptr, {}}, nullptr, {}};
  unknown.done = [&](registry_result&& r) { heard_unknown = std::move(r); };
  auto r = readings({{d1, {1}}});
  commit_->add(r->job);
  commit_->add(known);
  commit_->add(unknown);
  commit_->flush();
  ASSERT_TRUE(heard_known && heard_unknown);
  EXPECT_FALSE(heard_known->error);
  EXPECT_EQ(heard_known->patient.name, p2);
  EXPECT_EQ(heard_unknown->error, ingest_errc::not_found);
  ASSERT_EQ(dispatched_.size(), 1u);
  ASSERT_EQ(dispatched_[0]->entries.size(), 2u);
  auto& input = dispatched_[0]->entries[1];
  EXPECT_TRUE(input.clinician);
  EXPECT_EQ(input.patient, p2);
  EXPECT_EQ(input.device, "nurse-1");
}

TEST_F(group_commit_test, a_reset_forgets_the_devices_numbers_in_a_record_of_its_own) {
  auto before = readings({{d2, {1, 2, 3}}});
  commit_->add(before->job);
  commit_->flush();
  std::optional<registry_result> heard;
  commit_->add_reset(reset_device_sequence{d2}, [&](registry_result&& r) { heard = std::move(r); });
  commit_->flush();
  ASSERT_TRUE(heard);
  EXPECT_FALSE(heard->error);
  EXPECT_EQ(heard->device.name, d2);
  ASSERT_EQ(dispatched_.size(), 2u);
  ASSERT_EQ(dispatched_[1]->entries.size(), 1u);
  EXPECT_TRUE(dispatched_[1]->entries[0].sequence_reset);
  auto again = readings({{d2, {1}}});  // taken again: the numbers start afresh
  commit_->add(again->job);
  commit_->flush();
  EXPECT_EQ(again->heard->accepted, 1u);
  std::optional<registry_result> missing;
  commit_->add_reset(reset_device_sequence{"tenants/h1/devices/nobody"},
                     [&](registry_result&& r) { missing = std::move(r); });
  commit_->flush();
  EXPECT_EQ(missing->error, ingest_errc::not_found);
}

namespace {

// A member of a cluster that owns every shard except p2's.
class group_commit_cluster_test : public group_commit_test {
protected:
  void SetUp() override {
    owns_ = [](uint32_t s) { return s != models::shard_of(p2, 16); };
    group_commit_test::SetUp();
  }
};

}  // namespace

TEST_F(group_commit_cluster_test, readings_of_a_fenced_shard_are_refused_to_be_resent) {
  auto shard = fence_->shard_of(d2);
  fence_->fence({shard});
  auto r = readings({{d2, {1}}});
  commit_->add(r->job);
  std::optional<registry_result> heard;
  if (fence_->shard_of(p1) != shard) {
    fence_->fence({fence_->shard_of(p1)});
    input_job input{patient_input{p1, "nurse-1", nullptr, {}}, [&](registry_result&& x) { heard = std::move(x); }, {}};
    commit_->add(input);
    commit_->flush();
    EXPECT_EQ(heard->error, ingest_errc::moving);
  } else {
    commit_->flush();
  }
  ASSERT_EQ(r->heard->rejections.size(), 1u);
  EXPECT_EQ(r->heard->rejections[0].reason, rejection_reason::unavailable);
  EXPECT_NE(r->heard->rejections[0].description.find("being handed to another member"), std::string::npos);
  fence_->lift({shard});
  auto again = readings({{d2, {1}}});
  commit_->add(again->job);
  commit_->flush();
  EXPECT_EQ(again->heard->accepted, 1u);
}

TEST_F(group_commit_cluster_test, readings_for_another_members_patient_come_back_as_its_part) {
  if (fence_->shard_of(d2) == fence_->shard_of(p2))
    GTEST_SKIP() << "the device and the patient share a shard";
  registry({assign_device{d2, p2}});
  dir_->forget_shards(std::vector<bool>(16, true));  // the directory reads the assignment again
  auto r = readings({{d2, {1, 2}}});
  commit_->add(r->job);
  commit_->flush();
  EXPECT_EQ(r->heard->accepted, 2u);
  ASSERT_EQ(r->heard->patient_parts.size(), 1u);
  auto& part = r->heard->patient_parts[0];
  EXPECT_EQ(part.patient, p2);
  EXPECT_EQ(part.device, d2);
  EXPECT_EQ(part.readings.size(), 2u);
  EXPECT_EQ(part.fresh, (std::vector<bool>{true, true}));
  // A resend: duplicates here, carried to the patient's owner again.
  auto resent = readings({{d2, {2}}});
  commit_->add(resent->job);
  commit_->flush();
  ASSERT_EQ(resent->heard->patient_parts.size(), 1u);
  EXPECT_EQ(resent->heard->patient_parts[0].fresh, std::vector<bool>{false});
}
