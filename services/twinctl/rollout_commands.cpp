#include "services/twinctl/rollout_commands.hpp"

#include <cstdio>

#include <grpcpp/grpcpp.h>

#include "healthtwin/v1/rollout.grpc.pb.h"
#include "services/twinctl/api_commands.hpp"

namespace healthtwin::twinctl {

namespace {

using S = v1::RolloutService::Stub;

void print_rollout(const v1::Rollout& r, bool json, bool devices) {
  if (json)
    return print_json(r);
  auto& c = r.counts();
  std::printf("%s  firmware %s  %s%s%s  wave %u of %d\n", r.name().c_str(), r.firmware().c_str(),
              short_name(v1::RolloutStatus_descriptor(), r.status()).c_str(), r.status_reason().empty() ? "" : ": ",
              r.status_reason().c_str(), r.wave() + 1, r.waves_percent_size());
  std::printf("  pending %u  gated %u  downloading %u  installed %u  failed %u  rolled back %u\n", c.pending(),
              c.gated(), c.downloading(), c.installed(), c.failed(), c.rolled_back());
  if (!devices)
    return;
  for (auto& d : r.devices()) {
    std::printf("  %s  wave %u  %s%s%s", d.device().c_str(), d.wave() + 1,
                short_name(v1::OtaState_descriptor(), d.state()).c_str(), d.reason().empty() ? "" : ": ",
                d.reason().c_str());
    if (!d.override_by().empty())
      std::printf("  (gate overridden by %s: %s)", d.override_by().c_str(), d.override_reason().c_str());
    std::printf("\n");
  }
}

}  // namespace

rollout_commands::rollout_commands(CLI::App& app, const std::function<void(CLI::App*)>& connect) {
  rollouts_ = app.add_subcommand("rollouts", "firmware rollouts over the air (RolloutService)")->require_subcommand(1);
  create_ = rollouts_->add_subcommand("create", "start moving devices to a firmware, wave by wave");
  get_ = rollouts_->add_subcommand("get", "a rollout and where each of its devices is");
  list_ = rollouts_->add_subcommand("list", "a tenant's rollouts, newest first");
  pause_ = rollouts_->add_subcommand("pause", "start no more devices (those installing carry on)");
  resume_ = rollouts_->add_subcommand("resume", "start devices again, accepting the failures so far");
  cancel_ = rollouts_->add_subcommand("cancel", "end a rollout for good");
  override_ = rollouts_->add_subcommand("override", "let a device the safety gate holds back update (clinician)");
  for (auto* c : {create_, get_, pause_, resume_, cancel_, override_}) {
    connect(c);
    c->add_option("name", name_, "tenants/T/rollouts/R")->required();
  }
  connect(list_);
  list_->add_option("--tenant", tenant_, "the tenant")->required();
  create_->add_option("--firmware", firmware_, "the firmware version devices move to")->required();
  auto* type = create_->add_option("--type", type_, "every device of a type: PULSE_OXIMETER, BEDSIDE_MONITOR, ...");
  auto* devices = create_->add_option("--device", devices_, "a device, tenants/T/devices/D (repeat; the first ones form the first wave)");
  type->excludes(devices);
  create_->add_option("--waves", waves_, "cumulative percentages per wave, the last 100 (default 10,50,100)")
      ->delimiter(',');
  create_->add_option("--max-failure-ratio", max_failure_ratio_, "pause above this failed share (default 0.1)")
      ->check(CLI::Range(0.0, 1.0));
  create_->add_option("--min-finished", min_finished_, "... once this many devices finished (default 5)");
  override_->add_option("--device", device_, "the held device, tenants/T/devices/D")->required();
  override_->add_option("--reason", reason_, "why it may update now (recorded)")->required();
}

int rollout_commands::run(const services::channel_settings& node, bool json) const {
  v1::Rollout r;
  int rc = done;
  if (list_->parsed()) {
    v1::ListRolloutsRequest req;
    req.set_parent("tenants/" + tenant_);
    v1::ListRolloutsResponse resp;
    rc = unary(node, "listing the rollouts", &S::ListRollouts, req, resp);
    if (rc == done && json)
      print_json(resp);
    else if (rc == done)
      for (auto& x : resp.rollouts())
        print_rollout(x, false, false);
    return rc;
  }
  auto name = split_name(name_, "rollouts");
  if (!name)
    return usage;
  if (create_->parsed()) {
    if (type_.empty() && devices_.empty()) {
      std::fprintf(stderr, "twinctl: name the devices: --type or --device\n");
      return usage;
    }
    v1::CreateRolloutRequest req;
    req.set_parent(name->first);
    req.set_rollout_id(name->second);
    auto* spec = req.mutable_rollout();
    spec->set_firmware(firmware_);
    if (!type_.empty()) {
      v1::DeviceType t{};
      if (!v1::DeviceType_Parse("DEVICE_TYPE_" + type_, &t) && !v1::DeviceType_Parse(type_, &t)) {
        std::fprintf(stderr, "twinctl: --type %s: not a device type (BEDSIDE_MONITOR, PULSE_OXIMETER, ...)\n",
                     type_.c_str());
        return usage;
      }
      spec->mutable_target()->set_device_type(t);
    }
    for (auto& d : devices_)
      spec->mutable_target()->add_devices(d);
    for (auto w : waves_)
      spec->add_waves_percent(w);
    if (max_failure_ratio_)
      spec->set_max_failure_ratio(*max_failure_ratio_);
    if (min_finished_)
      spec->set_min_finished(*min_finished_);
    rc = unary(node, "creating the rollout", &S::CreateRollout, req, r);
  } else if (override_->parsed()) {
    v1::OverrideRolloutGateRequest req;
    req.set_name(name_);
    req.set_device(device_);
    req.set_reason(reason_);
    rc = unary(node, "overriding the safety gate", &S::OverrideRolloutGate, req, r);
  } else if (get_->parsed()) {
    v1::GetRolloutRequest req;
    req.set_name(name_);
    rc = unary(node, "reading the rollout", &S::GetRollout, req, r);
  } else {
    v1::RolloutActionRequest req;
    req.set_name(name_);
    if (pause_->parsed())
      rc = unary(node, "pausing the rollout", &S::PauseRollout, req, r);
    else if (resume_->parsed())
      rc = unary(node, "resuming the rollout", &S::ResumeRollout, req, r);
    else
      rc = unary(node, "cancelling the rollout", &S::CancelRollout, req, r);
  }
  if (rc == done)
    print_rollout(r, json, get_->parsed());
  return rc;
}

}  // namespace healthtwin::twinctl
