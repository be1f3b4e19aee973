#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "actors/cluster/shard_map.hpp"

namespace healthtwin::cluster {

/// Members with these names at "NAME:7000".
inline std::vector<member> members_named(std::initializer_list<const char*> names) {
  std::vector<member> out;
  for (auto* n : names)
    out.push_back({n, std::string{n} + ":7000"});
  return out;
}

}  // namespace healthtwin::cluster
