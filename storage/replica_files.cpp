#include "storage/replica_files.hpp"

namespace healthtwin::storage {

bool valid_data_file_name(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

bool immutable_data_file(const std::string& name) {
  return name.size() > 4 && name.ends_with(".sst");
}

bool replica_lacks(const std::string& name, uint64_t size, const std::map<std::string, uint64_t>& holds) {
  if (!immutable_data_file(name))
    return true;
  auto it = holds.find(name);
  return it == holds.end() || it->second != size;
}

}  // namespace healthtwin::storage
