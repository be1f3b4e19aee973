// The `healthtwin` node binary: parses its configuration and runs a node
// (services/node/node.hpp: the phases it starts in and the order it stops in).

#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "services/logging/json_log.hpp"
#include "services/node/node.hpp"
#include "services/node/node_config.hpp"

int main(int argc, char** argv) {
  using namespace healthtwin;
  auto parsed = node::parse_node_config(std::vector<std::string>(argv, argv + argc));
  if (!parsed.config) {
    (parsed.exit_code == 0 ? std::cout : std::cerr) << parsed.message;
    return parsed.exit_code;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("healthtwin"));
  spdlog::set_level(spdlog::level::from_str(parsed.config->log_level));
  services::use_log_format(parsed.config->log_format);
  node::node n{std::move(*parsed.config)};
  return n.run();
}
