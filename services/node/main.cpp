// The `healthtwin` node binary: parses its configuration and runs a node
// (services/node/node.hpp: the phases it starts in and the order it stops in).

#include <unistd.h>

#include <cerrno>
#include <cstring>
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
  int code = node::node{std::move(*parsed.config)}.run();
  if (code == node::exit_deposed || code == node::exit_install_copy) {
    // A voter of a replicated store that another voter leads now starts
    // again, as the same process (ADR 0039): it waits to lead the store.
    spdlog::info("starting again to wait for the store");
    spdlog::default_logger_raw()->flush();
    ::execv("/proc/self/exe", argv);
    std::cerr << "cannot start again: " << std::strerror(errno) << "\n";
  }
  return code;
}
