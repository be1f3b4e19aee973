#include "services/grpc/rollout_manager.hpp"

#include <gtest/gtest.h>

#include <caf/sec.hpp>
#include <fmt/format.h>

#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::services;

namespace {

// The node as a rollout sees it: devices in a map, targets recorded.
class fake_facts final : public rollout_facts {
public:
  std::map<std::string, storage::device_record> registered;
  std::map<std::string, patient_care> care_of;
  std::vector<std::string> targeted;
  bool refuse_targets = false;

  std::vector<device_fact> devices(const std::vector<std::string>& names) override {
    std::vector<device_fact> out(names.size());
    for (size_t i = 0; i < names.size(); ++i)
      if (auto it = registered.find(names[i]); it != registered.end())
        out[i].record = it->second;
    return out;
  }
  std::unordered_map<std::string, patient_care> cares(const std::vector<std::string>& patients) override {
    std::unordered_map<std::string, patient_care> out;
    for (auto& p : patients)
      out.emplace(p, care_of[p]);
    return out;
  }
  grpc::Status target(const storage::device_record& d, const std::string& firmware) override {
    if (refuse_targets)
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the twin did not answer in time");
    registered[d.name].desired.firmware = firmware;
    targeted.push_back(d.name);
    return grpc::Status::OK;
  }
  grpc::Status devices_of_type(const std::string& tenant, models::device_type type,
                               std::vector<std::string>& out) override {
    for (auto& [name, d] : registered)
      if (d.type == type && name.starts_with("tenants/" + tenant + "/"))
        out.push_back(name);
    return grpc::Status::OK;
  }

  std::string add(int i, models::device_type type = models::device_type::pulse_oximeter) {
    auto name = fmt::format("tenants/h/devices/d{:03}", i);
    registered[name].name = name;
    registered[name].type = type;
    registered[name].reported.firmware = "1.0";
    return name;
  }
  void report(const std::string& device, const std::string& firmware, const std::string& state = {},
              const std::string& error = {}) {
    auto& r = registered[device].reported;
    r.firmware = firmware;
    r.settings["ota.state"] = state;
    r.settings["ota.error"] = error;
    r.update_time_ms = reported_at;
  }
  int64_t reported_at = 1'700'000'000'000;
};

class rollout_manager_test : public healthtwin::testing::store_fixture {
protected:
  v1::Rollout spec(std::vector<std::string> devices, std::vector<uint32_t> waves = {10, 50, 100}) {
    v1::Rollout r;
    r.set_firmware("2.0");
    for (auto& d : devices)
      r.mutable_target()->add_devices(d);
    for (auto w : waves)
      r.add_waves_percent(w);
    return r;
  }
  v1::Rollout get(rollout_manager& m, const std::string& name = "tenants/h/rollouts/r1") {
    v1::Rollout r;
    EXPECT_TRUE(m.get(name, &r).ok());
    return r;
  }

  fake_facts facts;
  int64_t now = 1'700'000'000'000;
};

}  // namespace

TEST_F(rollout_manager_test, waves_start_in_turn_and_the_rollout_completes) {
  std::vector<std::string> names;
  for (int i = 0; i < 20; ++i)
    names.push_back(facts.add(i));
  rollout_manager m{db(), facts, std::chrono::hours(1)};
  v1::Rollout out;
  ASSERT_TRUE(m.create("h", "tenants/h/rollouts/r1", spec(names), "ops", now, &out).ok());
  EXPECT_EQ(out.counts().pending(), 20u);
  EXPECT_EQ(out.devices(1).wave(), 0u);
  EXPECT_EQ(out.devices(2).wave(), 1u);
  m.step(now);
  EXPECT_EQ(facts.targeted, (std::vector<std::string>{names[0], names[1]}));  // wave 0: 10 %
  EXPECT_EQ(get(m).counts().downloading(), 2u);
  m.step(now);
  EXPECT_EQ(facts.targeted.size(), 2u);  // the wave is not finished
  facts.report(names[0], "2.0");
  facts.report(names[1], "2.0");
  m.step(now);
  EXPECT_EQ(facts.targeted.size(), 10u);  // wave 1: 50 %
  EXPECT_EQ(get(m).wave(), 1u);
  for (auto& n : names)
    facts.report(n, "2.0");
  m.step(now);
  m.step(now);
  auto r = get(m);
  EXPECT_EQ(r.status(), v1::ROLLOUT_STATUS_COMPLETE);
  EXPECT_EQ(r.counts().installed(), 20u);
  auto d = m.of_device(names[5]);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->device().state(), v1::OTA_STATE_INSTALLED);
  EXPECT_EQ(d->rollout(), "tenants/h/rollouts/r1");
}

TEST_F(rollout_manager_test, the_safety_gate_holds_a_device_until_a_clinician_overrides) {
  auto a = facts.add(1), b = facts.add(2), c = facts.add(3);
  facts.registered[a].patient = "tenants/h/patients/p1";
  facts.care_of["tenants/h/patients/p1"].open_alert = true;
  facts.registered[b].patient = "tenants/h/patients/p2";
  facts.care_of["tenants/h/patients/p2"].current_sources = {{models::metric::spo2, b}};
  facts.registered[c].patient = "tenants/h/patients/p2";  // not the source of anything
  rollout_manager m{db(), facts, std::chrono::hours(1)};
  v1::Rollout out;
  ASSERT_TRUE(m.create("h", "tenants/h/rollouts/r1", spec({a, b, c}, {100}), "ops", now, &out).ok());
  m.step(now);
  auto r = get(m);
  EXPECT_EQ(r.devices(0).state(), v1::OTA_STATE_GATED);
  EXPECT_EQ(r.devices(0).reason(), "its patient has an open MEDIUM or HIGH alert");
  EXPECT_EQ(r.devices(1).state(), v1::OTA_STATE_GATED);
  EXPECT_EQ(r.devices(1).reason(), "it is the only source of spo2 for its patient");
  EXPECT_EQ(r.devices(2).state(), v1::OTA_STATE_DOWNLOADING);
  EXPECT_EQ(facts.targeted, std::vector<std::string>{c});
  EXPECT_EQ(m.override_gate("tenants/h/rollouts/r1", c, "dr-a", "covered", now, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // already started
  ASSERT_TRUE(m.override_gate("tenants/h/rollouts/r1", a, "dr-a", "monitored by the ward nurse", now, &out).ok());
  facts.care_of["tenants/h/patients/p2"].current_sources.clear();  // b is free now
  m.step(now);
  r = get(m);
  EXPECT_EQ(r.devices(0).state(), v1::OTA_STATE_DOWNLOADING);
  EXPECT_EQ(r.devices(0).override_by(), "dr-a");
  EXPECT_EQ(r.devices(1).state(), v1::OTA_STATE_DOWNLOADING);
  EXPECT_EQ(facts.targeted.size(), 3u);
}

TEST_F(rollout_manager_test, failures_pause_it_resume_accepts_them_and_cancel_ends_it) {
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i)
    names.push_back(facts.add(i));
  rollout_manager m{db(), facts, std::chrono::hours(1)};
  auto s = spec(names, {100});
  s.set_max_failure_ratio(0.2);
  s.set_min_finished(3);
  v1::Rollout out;
  ASSERT_TRUE(m.create("h", "tenants/h/rollouts/r1", s, "ops", now, &out).ok());
  m.step(now);
  EXPECT_EQ(facts.targeted.size(), 10u);
  facts.report(names[0], "2.0");
  facts.report(names[1], "1.0", "failed", "checksum mismatch");
  facts.report(names[2], "1.0", "rolled_back");
  m.step(now);
  auto r = get(m);
  EXPECT_EQ(r.status(), v1::ROLLOUT_STATUS_PAUSED);
  EXPECT_EQ(r.status_reason(), "2 of 3 finished devices failed (67 %), above the limit of 20 %");
  EXPECT_EQ(r.devices(1).reason(), "checksum mismatch");
  EXPECT_EQ(r.devices(2).reason(), "the device reported rolled_back");
  ASSERT_TRUE(m.resume("tenants/h/rollouts/r1", now, &out).ok());
  EXPECT_EQ(out.accepted_failures(), 2u);
  m.step(now);
  EXPECT_EQ(get(m).status(), v1::ROLLOUT_STATUS_RUNNING);
  ASSERT_TRUE(m.pause("tenants/h/rollouts/r1", "ops-b", now, &out).ok());
  EXPECT_EQ(out.status_reason(), "paused by ops-b");
  ASSERT_TRUE(m.cancel("tenants/h/rollouts/r1", "ops-b", now, &out).ok());
  EXPECT_EQ(out.status(), v1::ROLLOUT_STATUS_CANCELLED);
  EXPECT_EQ(m.resume("tenants/h/rollouts/r1", now, &out).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // What was installing when it was cancelled still gets its outcome recorded.
  facts.report(names[3], "2.0");
  m.step(now);
  r = get(m);
  EXPECT_EQ(r.status(), v1::ROLLOUT_STATUS_CANCELLED);
  EXPECT_EQ(r.devices(3).state(), v1::OTA_STATE_INSTALLED);
  EXPECT_EQ(r.counts().installed(), 2u);
  // Its devices are free for another rollout now; what they reported for
  // the last one does not count for it.
  auto next = spec(names, {100});
  next.set_firmware("3.0");
  ASSERT_TRUE(m.create("h", "tenants/h/rollouts/r2", next, "ops", now + 1000, &out).ok());
  m.step(now + 1000);
  r = get(m, "tenants/h/rollouts/r2");
  EXPECT_EQ(r.devices(1).state(), v1::OTA_STATE_DOWNLOADING);
  EXPECT_EQ(r.counts().failed() + r.counts().rolled_back(), 0u);
  facts.reported_at = now + 2000;
  facts.report(names[5], "1.0", "failed", "flash worn out");
  m.step(now + 2000);
  EXPECT_EQ(get(m, "tenants/h/rollouts/r2").devices(5).reason(), "flash worn out");
  EXPECT_EQ(get(m).devices(5).state(), v1::OTA_STATE_DOWNLOADING);  // r2's failure, not r1's
}

TEST_F(rollout_manager_test, creation_names_what_is_wrong) {
  auto a = facts.add(1);
  facts.add(2, models::device_type::infusion_pump);
  rollout_manager m{db(), facts, std::chrono::hours(1)};
  v1::Rollout out;
  auto both = spec({a});
  both.mutable_target()->set_device_type(v1::DEVICE_TYPE_PULSE_OXIMETER);
  auto st = m.create("h", "tenants/h/rollouts/r1", both, "ops", now, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto waves = spec({a}, {50, 40});
  st = m.create("h", "tenants/h/rollouts/r1", waves, "ops", now, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  st = m.create("h", "tenants/h/rollouts/r1", spec({"tenants/other/devices/x"}), "ops", now, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  st = m.create("h", "tenants/h/rollouts/r1", spec({"tenants/h/devices/nope"}), "ops", now, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::Rollout pumps;
  pumps.set_firmware("2.0");
  pumps.mutable_target()->set_device_type(v1::DEVICE_TYPE_INFUSION_PUMP);
  ASSERT_TRUE(m.create("h", "tenants/h/rollouts/pumps", pumps, "ops", now, &out).ok());
  ASSERT_EQ(out.devices_size(), 1);
  EXPECT_EQ(out.devices(0).device(), "tenants/h/devices/d002");
  EXPECT_EQ(out.waves_percent_size(), 3);  // the default waves
  EXPECT_DOUBLE_EQ(out.max_failure_ratio(), 0.1);
  EXPECT_EQ(m.create("h", "tenants/h/rollouts/pumps", pumps, "ops", now, &out).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(m.create("h", "tenants/h/rollouts/again", pumps, "ops", now, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // the pump is in a running rollout
  auto listed = m.list("h");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name(), "tenants/h/rollouts/pumps");
  EXPECT_EQ(listed[0].firmware(), "2.0");
  EXPECT_EQ(listed[0].counts().pending(), 1u);
  EXPECT_EQ(listed[0].devices_size(), 0);  // GetRollout has them
  EXPECT_TRUE(m.list("other").empty());
}

TEST_F(rollout_manager_test, a_restart_keeps_rollouts_and_sets_a_firmware_a_crash_left_unset) {
  std::vector<std::string> names;
  for (int i = 0; i < 4; ++i)
    names.push_back(facts.add(i));
  {
    rollout_manager m{db(), facts, std::chrono::hours(1)};
    v1::Rollout out;
    ASSERT_TRUE(m.create("h", "tenants/h/rollouts/r1", spec(names, {100}), "ops", now, &out).ok());
    m.step(now);
    ASSERT_EQ(facts.targeted.size(), 4u);
  }
  facts.registered[names[3]].desired.firmware.clear();  // as if the node died before setting it
  facts.targeted.clear();
  reopen();
  rollout_manager m{db(), facts, std::chrono::hours(1)};
  ASSERT_FALSE(m.start());
  EXPECT_EQ(get(m).counts().downloading(), 4u);
  m.step(now);
  EXPECT_EQ(facts.targeted, std::vector<std::string>{names[3]});
  m.stop();
}

TEST_F(rollout_manager_test, a_device_whose_firmware_cannot_be_set_waits_for_the_next_step) {
  auto a = facts.add(1);
  rollout_manager m{db(), facts, std::chrono::hours(1)};
  v1::Rollout out;
  ASSERT_TRUE(m.create("h", "tenants/h/rollouts/r1", spec({a}, {100}), "ops", now, &out).ok());
  facts.refuse_targets = true;
  m.step(now);
  auto r = get(m);
  EXPECT_EQ(r.devices(0).state(), v1::OTA_STATE_PENDING);
  EXPECT_NE(r.devices(0).reason().find("could not be set"), std::string::npos);
  facts.refuse_targets = false;
  m.step(now);
  EXPECT_EQ(get(m).devices(0).state(), v1::OTA_STATE_DOWNLOADING);
}
