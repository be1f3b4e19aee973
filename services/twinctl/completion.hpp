#pragma once
// `twinctl completion bash`: a bash completion script made from the
// command line's own definition, so it never lags behind it.

#include <string>

#include <CLI/CLI.hpp>

namespace healthtwin::twinctl {

/// The script: `source <(twinctl completion bash)`, or install it as
/// /etc/bash_completion.d/twinctl. It completes subcommands and options at
/// each level, and file names after options that take a file.
std::string bash_completion(const CLI::App& app, const std::string& program);

}  // namespace healthtwin::twinctl
