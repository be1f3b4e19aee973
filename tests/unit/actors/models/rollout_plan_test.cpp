#include "actors/models/rollout_plan.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

namespace {

rollout_spec spec() {
  return {"4.2.0", {10, 50, 100}, 0.1, 5};
}

std::vector<rollout_device> fleet(size_t n) {
  return std::vector<rollout_device>(n);
}

void finish(std::vector<rollout_device>& d, const std::vector<size_t>& which, ota_state s = ota_state::installed) {
  for (auto i : which)
    d[i].state = s;
}

}  // namespace

TEST(rollout_plan, a_spec_names_its_bad_field) {
  EXPECT_FALSE(check(spec()));
  auto s = spec();
  s.firmware = "";
  EXPECT_EQ(check(s)->rfind("firmware:", 0), 0u);
  s = spec();
  s.waves_percent = {50, 20, 100};
  EXPECT_EQ(check(s)->rfind("waves_percent:", 0), 0u);
  s.waves_percent = {10, 50};
  EXPECT_EQ(check(s)->rfind("waves_percent:", 0), 0u);
  s = spec();
  s.max_failure_ratio = 1.5;
  EXPECT_EQ(check(s)->rfind("max_failure_ratio:", 0), 0u);
}

TEST(rollout_plan, a_device_state_follows_what_it_reports_once_targeted) {
  std::string why;
  EXPECT_EQ(device_state(spec(), false, {"4.1.0", "", ""}, why), ota_state::pending);
  EXPECT_EQ(device_state(spec(), true, {"4.1.0", "", ""}, why), ota_state::downloading);
  EXPECT_EQ(device_state(spec(), true, {"4.1.0", "installing", ""}, why), ota_state::downloading);
  EXPECT_EQ(device_state(spec(), true, {"4.2.0", "", ""}, why), ota_state::installed);
  EXPECT_EQ(device_state(spec(), false, {"4.2.0", "", ""}, why), ota_state::installed);  // already there
  EXPECT_EQ(device_state(spec(), true, {"4.1.0", "failed", "checksum mismatch"}, why), ota_state::failed);
  EXPECT_EQ(why, "checksum mismatch");
  EXPECT_EQ(device_state(spec(), true, {"4.1.0", "rolled_back", ""}, why), ota_state::rolled_back);
  EXPECT_EQ(why, "the device reported rolled_back");
}

TEST(rollout_plan, the_safety_gate_holds_a_device_its_patient_needs) {
  EXPECT_FALSE(safety_gate({}));  // not at a bedside
  care_context c;
  c.assigned = true;
  EXPECT_FALSE(safety_gate(c));
  c.open_alert = true;
  EXPECT_EQ(*safety_gate(c), "its patient has an open MEDIUM or HIGH alert");
  c.open_alert = false;
  c.sole_source = {metric::heart_rate, metric::spo2};
  EXPECT_EQ(*safety_gate(c), "it is the only source of heart_rate, spo2 for its patient");
  c.clinician_override = true;
  EXPECT_FALSE(safety_gate(c));
}

TEST(rollout_plan, waves_open_in_turn_over_200_devices) {
  auto d = fleet(200);
  auto step = plan_step(spec(), d, 0);
  EXPECT_EQ(step.wave, 0u);
  ASSERT_EQ(step.to_start.size(), 20u);  // 10 % of 200
  EXPECT_EQ(step.to_start.front(), 0u);
  EXPECT_EQ(step.to_start.back(), 19u);
  finish(d, step.to_start, ota_state::downloading);
  EXPECT_TRUE(plan_step(spec(), d, 0).to_start.empty());  // the wave is under way
  finish(d, step.to_start);
  step = plan_step(spec(), d, 0);
  EXPECT_EQ(step.wave, 1u);
  ASSERT_EQ(step.to_start.size(), 80u);  // up to 50 %
  EXPECT_EQ(step.to_start.front(), 20u);
  finish(d, step.to_start);
  step = plan_step(spec(), d, step.wave);
  EXPECT_EQ(step.wave, 2u);
  EXPECT_EQ(step.to_start.size(), 100u);
  finish(d, step.to_start);
  step = plan_step(spec(), d, step.wave);
  EXPECT_TRUE(step.complete);
  EXPECT_TRUE(step.to_start.empty());
}

TEST(rollout_plan, gated_devices_wait_without_holding_the_next_wave) {
  auto d = fleet(200);
  d[3].gated = d[7].gated = true;
  auto step = plan_step(spec(), d, 0);
  EXPECT_EQ(step.to_start.size(), 18u);
  finish(d, step.to_start);
  step = plan_step(spec(), d, 0);
  EXPECT_EQ(step.wave, 1u);  // the gated two wait; the next wave opens
  EXPECT_EQ(step.to_start.size(), 80u);
  d[3].gated = false;  // its patient's alert was resolved
  step = plan_step(spec(), d, 1);
  EXPECT_EQ(step.to_start.front(), 3u);
  EXPECT_FALSE(step.complete);
}

TEST(rollout_plan, too_many_failures_pause_the_rollout_and_say_why) {
  auto d = fleet(200);
  auto step = plan_step(spec(), d, 0);
  finish(d, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  finish(d, {17, 18}, ota_state::failed);  // 2 of 19: above 10 %
  step = plan_step(spec(), d, 0);
  EXPECT_TRUE(step.paused);
  EXPECT_TRUE(step.to_start.empty());
  EXPECT_EQ(step.pause_reason, "2 of 19 finished devices failed (11 %), above the limit of 10 %");
  auto few = fleet(200);
  finish(few, {0}, ota_state::failed);  // one failure among the first: not yet a rate
  EXPECT_FALSE(plan_step(spec(), few, 0).paused);
}

TEST(rollout_plan, failures_accepted_on_resume_do_not_pause_it_again) {
  auto d = fleet(200);
  finish(d, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  finish(d, {17, 18}, ota_state::failed);
  auto s = spec();
  s.accepted_failures = 2;  // the operator resumed after the pause above
  auto step = plan_step(s, d, 0);
  EXPECT_FALSE(step.paused);
  EXPECT_FALSE(step.to_start.empty());
  finish(d, {19, 20}, ota_state::rolled_back);  // 2 new failures of 19 counted: above 10 % again
  step = plan_step(s, d, 0);
  EXPECT_TRUE(step.paused);
  EXPECT_EQ(step.pause_reason, "2 of 19 finished devices failed (11 %), above the limit of 10 %");
}
