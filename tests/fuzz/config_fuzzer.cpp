// libFuzzer target: node configuration, as a TOML/INI file given with
// --config (first byte even) or as command-line arguments, one per line.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "services/node/node_config.hpp"

using namespace healthtwin::node;

namespace {
std::string config_path;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/healthtwin-fuzz-config.XXXXXX";
  if (!mkdtemp(dir))
    std::abort();
  config_path = std::string{dir} + "/node.toml";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> args{"healthtwin"};
  if (data[0] % 2 == 0) {
    std::ofstream{config_path, std::ios::binary | std::ios::trunc} << input;
    args.push_back("--config=" + config_path);
  } else {
    std::stringstream lines{input};
    for (std::string line; std::getline(lines, line);)
      args.push_back(line);
  }
  auto out = parse_node_config(args);
  // Either a configuration or an exit code with a message, never neither.
  if (!out.config && out.exit_code == 0 && out.message.empty())
    std::abort();
  if (out.config && out.exit_code != 0)
    std::abort();
  return 0;
}
