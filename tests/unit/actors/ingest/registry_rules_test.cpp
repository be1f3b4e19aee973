// The registry's rules, driven directly: one group of commands against a
// real store, as the ingest sequencer commits them (one batch).
#include <gtest/gtest.h>

#include "actors/ingest/registry_rules.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;

namespace {

const std::string p1 = "tenants/h1/patients/p1", p2 = "tenants/h1/patients/p2";
const std::string d1 = "tenants/h1/devices/d1";

class registry_rules_test : public healthtwin::testing::store_fixture {
protected:
  // A group of commands committed together; the results in order.
  std::vector<registry_result> commit(std::vector<registry_command> commands) {
    registry_rules rules{db(), reg(), [this](std::string_view name) -> caf::error {
                           if (closed_ == name)
                             return caf::make_error(ingest_errc::moving, std::string{"shard moving"});
                           return caf::none;
                         }};
    std::vector<registry_result> out;
    for (auto& c : commands)
      out.push_back(rules.run(c));
    notified_ = rules.notify();
    if (rules.batch().count() > 0) {
      EXPECT_FALSE(db().write(rules.batch(), true));
    }
    return out;
  }
  registry_result one(registry_command c) { return commit({std::move(c)})[0]; }

  static registry_command patient(const std::string& name, const std::string& ward = "ICU-1") {
    storage::patient_record p;
    p.name = name;
    p.ward = ward;
    return create_patient{p};
  }
  static registry_command device(const std::string& name) {
    storage::device_record d;
    d.name = name;
    return create_device{d};
  }
  static bool is(const caf::error& e, ingest_errc code) { return e == code; }

  storage::registry& reg() { return *registry_; }
  void SetUp() override {
    store_fixture::SetUp();
    registry_.emplace(db());
  }
  std::optional<storage::registry> registry_;
  std::string closed_;
  std::vector<std::string> notified_;
};

}  // namespace

TEST_F(registry_rules_test, a_group_sees_its_own_earlier_changes) {
  // Created and assigned in one group (one batch, not yet written).
  auto r = commit({patient(p1), device(d1), assign_device{d1, p1}});
  for (auto& x : r)
    EXPECT_FALSE(x.error) << to_string(x.error);
  EXPECT_EQ(r[2].device.patient, p1);
  auto stored = reg().get_patient(p1);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->devices, std::vector<std::string>{d1});
  EXPECT_EQ((*stored)->version, 2u);  // created, then the device attached
  EXPECT_EQ(notified_, std::vector<std::string>{p1});
}

TEST_F(registry_rules_test, creates_are_refused_for_existing_and_erased_names) {
  EXPECT_FALSE(one(patient(p1)).error);
  EXPECT_TRUE(is(one(patient(p1)).error, ingest_errc::already_exists));
  EXPECT_FALSE(one(erase_patient{p1}).error);
  auto again = one(patient(p1));
  EXPECT_TRUE(is(again.error, ingest_errc::failed_precondition));
  // Erased and created again within one group: refused as well.
  auto r = commit({patient(p2), erase_patient{p2}, patient(p2)});
  EXPECT_FALSE(r[0].error);
  EXPECT_FALSE(r[1].error);
  EXPECT_TRUE(is(r[2].error, ingest_errc::failed_precondition));
}

TEST_F(registry_rules_test, a_device_serves_one_patient_of_its_own_tenant_at_a_time) {
  commit({patient(p1), patient(p2), device(d1)});
  EXPECT_FALSE(one(assign_device{d1, p1}).error);
  EXPECT_FALSE(one(assign_device{d1, p1}).error);  // idempotent
  EXPECT_TRUE(is(one(assign_device{d1, p2}).error, ingest_errc::failed_precondition));
  EXPECT_TRUE(is(one(assign_device{d1, "tenants/h2/patients/p9"}).error, ingest_errc::failed_precondition));
  EXPECT_FALSE(one(assign_device{d1, ""}).error);  // unassign
  EXPECT_TRUE((*reg().get_patient(p1))->devices.empty());
  storage::patient_record other;
  other.name = "tenants/h2/patients/p9";
  EXPECT_FALSE(one(create_patient{other}).error);
  EXPECT_TRUE(is(one(assign_device{d1, other.name}).error, ingest_errc::invalid_argument));
  EXPECT_TRUE(is(one(assign_device{"tenants/h1/devices/none", p1}).error, ingest_errc::not_found));
  EXPECT_TRUE(is(one(assign_device{d1, "tenants/h1/patients/none"}).error, ingest_errc::not_found));
}

TEST_F(registry_rules_test, decommissioning_detaches_and_is_final) {
  commit({patient(p1), device(d1), assign_device{d1, p1}});
  auto r = one(decommission_device{d1});
  EXPECT_FALSE(r.error);
  EXPECT_NE(r.device.decommission_time_ms, 0);
  EXPECT_TRUE(r.device.patient.empty());
  EXPECT_TRUE((*reg().get_patient(p1))->devices.empty());
  EXPECT_FALSE(one(decommission_device{d1}).error);  // idempotent
  EXPECT_TRUE(is(one(assign_device{d1, p1}).error, ingest_errc::failed_precondition));
  EXPECT_TRUE(is(one(update_desired_config{d1, {}, std::nullopt}).error, ingest_errc::failed_precondition));
}

TEST_F(registry_rules_test, an_update_with_a_stale_version_is_aborted) {
  auto created = one(patient(p1));
  update_patient u;
  u.fields.name = p1;
  u.fields.bed = "12";
  u.mask = {"bed"};
  u.expected_version = created.patient.version;
  auto updated = one(u);
  EXPECT_FALSE(updated.error);
  EXPECT_EQ(updated.patient.bed, "12");
  EXPECT_EQ(updated.patient.ward, "ICU-1");  // not in the mask
  EXPECT_TRUE(is(one(u).error, ingest_errc::aborted));  // the old version again
}

TEST_F(registry_rules_test, commands_on_a_moving_shard_are_refused_and_write_nothing) {
  closed_ = p1;
  auto r = one(patient(p1));
  EXPECT_TRUE(is(r.error, ingest_errc::moving));
  closed_.clear();
  auto stored = reg().get_patient(p1);
  ASSERT_TRUE(stored);
  EXPECT_FALSE(*stored);
}
