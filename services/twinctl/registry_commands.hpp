#pragma once
// twinctl's registry and clinical commands over a running node's API:
//   patients create|get|update|chart|erase   (RegistryService, ClinicalService.RecordObservations)
//   devices create|get|assign|unassign|decommission|reset-sequence   (RegistryService)
//   settings get|set   (ClinicalService: a patient's alert limits and model settings)
// Exit codes as api_commands.hpp says.

#include <functional>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "services/grpc/client_channel.hpp"

namespace healthtwin::twinctl {

class registry_commands {
public:
  /// Adds the commands to `app`; `connect` gives a command the node's
  /// connection and --json flags.
  registry_commands(CLI::App& app, const std::function<void(CLI::App*)>& connect);

  /// The top-level commands (for the caller's "needs a node" check).
  bool parsed() const { return patients_->parsed() || devices_->parsed() || settings_->parsed() || locate_->parsed(); }
  /// Runs the command given.
  int run(const services::channel_settings& node, bool json) const;

private:
  CLI::App *patients_, *devices_, *settings_, *locate_;
  CLI::App *patient_create_, *patient_get_, *patient_update_, *patient_chart_, *patient_erase_;
  CLI::App *device_create_, *device_get_, *device_assign_, *device_unassign_, *device_decommission_, *device_reset_;
  CLI::App *settings_get_, *settings_set_;
  std::string name_, ward_, bed_, home_region_, type_, patient_, data_, acvpu_, etag_;
  std::optional<bool> scale2_;
  std::optional<double> oxygen_;
  bool yes_ = false;
};

}  // namespace healthtwin::twinctl
