#pragma once
// twinctl's manual: a man-style DESCRIPTION, EXIT STATUS and EXAMPLES
// section at the end of every command's --help.

#include <string>

#include <CLI/CLI.hpp>

namespace healthtwin::twinctl {

/// Sets the manual text of every command of `app` that has one (all do:
/// tests/e2e/twinctl_api_test.py checks each command's --help).
void add_manual(CLI::App& app);

}  // namespace healthtwin::twinctl
