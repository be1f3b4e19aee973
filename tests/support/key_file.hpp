#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace healthtwin::testing {

/// Writes a node key file (`text` and a newline) with `mode`; returns its path.
inline std::string write_key_file(const std::filesystem::path& path, const std::string& text,
                                  mode_t mode = 0600) {
  std::ofstream{path} << text << "\n";
  ::chmod(path.c_str(), mode);
  return path.string();
}

/// 64 random hexadecimal digits: the text of a fresh key file.
inline std::string random_key_hex() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 64; ++i)
    out += "0123456789abcdef"[rd() % 16];
  return out;
}

}  // namespace healthtwin::testing
