#pragma once
// twinctl's firmware rollout commands (RolloutService):
//   rollouts create|get|list|pause|resume|cancel|override
// Exit codes as api_commands.hpp says.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "services/grpc/client_channel.hpp"

namespace healthtwin::twinctl {

class rollout_commands {
public:
  /// Adds the commands to `app`; `connect` gives a command the node's
  /// connection and --json flags.
  rollout_commands(CLI::App& app, const std::function<void(CLI::App*)>& connect);

  bool parsed() const { return rollouts_->parsed(); }
  int run(const services::channel_settings& node, bool json) const;

private:
  CLI::App *rollouts_, *create_, *get_, *list_, *pause_, *resume_, *cancel_, *override_;
  std::string name_, tenant_, firmware_, type_, reason_, device_;
  std::vector<std::string> devices_;
  std::vector<uint32_t> waves_;
  std::optional<double> max_failure_ratio_;
  std::optional<uint32_t> min_finished_;
};

}  // namespace healthtwin::twinctl
