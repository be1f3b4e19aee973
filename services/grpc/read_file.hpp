#pragma once

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace healthtwin::services {

/// The whole content of a file (certificates, keys, token files); nullopt
/// if it cannot be read.
inline std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace healthtwin::services
