#pragma once

#include <fstream>
#include <optional>
#include <sstream>
#include <initializer_list>
#include <string>
#include <string_view>

#include <sys/stat.h>

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

/// What tells a file's content apart without reading it: its device,
/// inode, size and change time, following symbolic links (so a swapped
/// link, as Kubernetes swaps a mounted secret, counts as a change); empty
/// when the file cannot be found. Certificates are reloaded when a stamp of
/// one of their files changes.
inline std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0)
    return {};
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

/// The stamps of several files (a certificate, its key, a CA), in one string.
inline std::string file_stamps(std::initializer_list<std::string_view> paths) {
  std::string out;
  for (auto p : paths)
    out.append(file_stamp(std::string{p})).push_back('|');
  return out;
}

}  // namespace healthtwin::services
