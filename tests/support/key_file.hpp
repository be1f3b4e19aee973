#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace healthtwin::testing {

/// Writes a node key file (`text` and a newline) with `mode`; returns its path.
inline std::string write_key_file(const std::filesystem::path& path, const std::string& text,
                                  mode_t mode = 0600) {
  std::ofstream{path} << text << "\n";
  ::chmod(path.c_str(), mode);
  return path.string();
}

}  // namespace healthtwin::testing
