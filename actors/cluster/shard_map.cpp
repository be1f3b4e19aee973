#include "actors/cluster/shard_map.hpp"

#include <algorithm>
#include <set>

#include <xxhash.h>

namespace healthtwin::cluster {

shard_map::shard_map(std::vector<member> members, uint32_t shards)
    : members_(std::move(members)), owners_(shards) {
  for (uint32_t s = 0; s < shards; ++s) {
    uint32_t best = 0;
    uint64_t best_weight = 0;
    for (uint32_t m = 0; m < members_.size(); ++m) {
      auto w = weight(members_[m].name, s);
      // Ties (astronomically rare) go to the smaller name: every member
      // computes the same map whatever the order of its list.
      if (m == 0 || w > best_weight || (w == best_weight && members_[m].name < members_[best].name)) {
        best = m;
        best_weight = w;
      }
    }
    owners_[s] = best;
  }
}

shard_map::shard_map(std::vector<member> members, std::vector<uint32_t> owners,
                     std::vector<bool> listed)
    : members_(std::move(members)), owners_(std::move(owners)), listed_(std::move(listed)) {}

uint64_t shard_map::weight(std::string_view member_name, uint32_t shard) noexcept {
  return XXH64(member_name.data(), member_name.size(), shard);
}

std::optional<uint32_t> shard_map::find(std::string_view name) const noexcept {
  for (uint32_t m = 0; m < members_.size(); ++m)
    if (members_[m].name == name)
      return m;
  return std::nullopt;
}

uint32_t shard_map::owned_by(uint32_t index) const noexcept {
  return static_cast<uint32_t>(std::count(owners_.begin(), owners_.end(), index));
}

parsed_members parse_members(std::string_view list, bool names_repeat) {
  parsed_members out;
  std::set<std::string, std::less<>> names, addresses;
  size_t pos = 0;
  while (pos <= list.size()) {
    auto end = std::min(list.find(',', pos), list.size());
    auto item = list.substr(pos, end - pos);
    auto eq = item.find('=');
    auto colon = item.rfind(':');
    if (eq == std::string_view::npos || eq == 0 || colon == std::string_view::npos ||
        colon < eq + 2 || colon + 1 == item.size()) {
      out.error = "member \"" + std::string{item.substr(0, 128)} + "\" is not name=host:port";
      return out;
    }
    member m{std::string{item.substr(0, eq)}, std::string{item.substr(eq + 1)}};
    if (!names.insert(m.name).second && !names_repeat) {
      out.error = "member name \"" + m.name.substr(0, 128) + "\" appears twice";
      return out;
    }
    if (!addresses.insert(m.address).second) {
      out.error = "address \"" + m.address.substr(0, 128) + "\" appears twice";
      return out;
    }
    out.members.push_back(std::move(m));
    pos = end + 1;
  }
  return out;
}

std::vector<member> statefulset_members(std::string_view set, std::string_view service,
                                        uint32_t replicas, uint16_t port) {
  std::vector<member> out;
  for (uint32_t i = 0; i < replicas; ++i) {
    auto name = std::string{set} + "-" + std::to_string(i);
    out.push_back({name, name + "." + std::string{service} + ":" + std::to_string(port)});
  }
  return out;
}

}  // namespace healthtwin::cluster
