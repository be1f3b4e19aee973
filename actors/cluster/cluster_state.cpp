#include "actors/cluster/cluster_state.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include <xxhash.h>

#include "healthtwin/internal/records.pb.h"

namespace healthtwin::cluster {

namespace {

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Order-independent: the same names in any order found the same cluster.
std::string founding_of(const std::vector<member>& members) {
  std::vector<std::string> names;
  for (auto& m : members)
    names.push_back(m.name);
  std::sort(names.begin(), names.end());
  std::string joined;
  for (auto& n : names) {
    joined += n;
    joined += '\n';
  }
  return hex16(XXH64(joined.data(), joined.size(), 0));
}

}  // namespace

cluster_state cluster_state::found(const std::vector<member>& members, uint32_t shards) {
  cluster_state s;
  s.founding_ = founding_of(members);
  s.members_ = members;
  for (auto& name : placement(members, shards))
    s.owners_.push_back({name, 0});
  return s;
}

std::vector<std::string> cluster_state::placement(const std::vector<member>& members,
                                                  uint32_t shards) {
  shard_map map{members, shards};
  std::vector<std::string> out;
  out.reserve(shards);
  for (uint32_t s = 0; s < shards; ++s)
    out.push_back(members[map.owner(s)].name);
  return out;
}

std::string cluster_state::incompatible(const cluster_state& other) const {
  if (other.shards() != shards())
    return "shard count differs (" + std::to_string(shards()) + " vs " +
           std::to_string(other.shards()) + ")";
  if (other.founding_ != founding_)
    return "founded by other members (" + founding_ + " vs " + other.founding_ + ")";
  return {};
}

bool cluster_state::merge(const cluster_state& other) {
  bool changed = false;
  if (other.members_version_ > members_version_) {
    members_version_ = other.members_version_;
    members_ = other.members_;
    changed = true;
  }
  for (size_t s = 0; s < owners_.size() && s < other.owners_.size(); ++s)
    if (other.owners_[s].version > owners_[s].version) {
      owners_[s] = other.owners_[s];
      changed = true;
    }
  return changed;
}

void cluster_state::set_members(std::vector<member> members) {
  members_ = std::move(members);
  ++members_version_;
}

void cluster_state::hand_over(uint32_t shard, std::string member) {
  auto& o = owners_[shard];
  o.member = std::move(member);
  ++o.version;
}

std::string cluster_state::digest() const {
  XXH64_state_t* h = XXH64_createState();
  XXH64_reset(h, 0);
  auto add = [&](std::string_view s) {
    XXH64_update(h, s.data(), s.size());
    XXH64_update(h, "\0", 1);
  };
  add(founding_);
  add(std::to_string(members_version_));
  for (auto& m : members_) {
    add(m.name);
    add(m.address);
  }
  for (auto& o : owners_) {
    add(o.member);
    add(std::to_string(o.version));
  }
  auto d = XXH64_digest(h);
  XXH64_freeState(h);
  return hex16(d);
}

std::string cluster_state::encode() const {
  internal::ClusterStateRecord r;
  r.set_shards(shards());
  r.set_founding(founding_);
  r.set_members_version(members_version_);
  for (auto& m : members_) {
    auto* out = r.add_members();
    out->set_name(m.name);
    out->set_address(m.address);
  }
  for (auto& o : owners_) {
    r.add_owner(o.member);
    r.add_owner_version(o.version);
  }
  return r.SerializeAsString();
}

std::optional<cluster_state> cluster_state::decode(std::string_view bytes, std::string& error) {
  internal::ClusterStateRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    error = "does not parse";
    return std::nullopt;
  }
  if (r.shards() == 0 || r.owner_size() != static_cast<int>(r.shards()) ||
      r.owner_version_size() != r.owner_size()) {
    error = "shards: " + std::to_string(r.shards()) + " with " + std::to_string(r.owner_size()) +
            " owners and " + std::to_string(r.owner_version_size()) + " versions";
    return std::nullopt;
  }
  if (r.founding().empty()) {
    error = "founding: empty";
    return std::nullopt;
  }
  cluster_state s;
  s.founding_ = r.founding();
  s.members_version_ = r.members_version();
  std::set<std::string> names;
  for (int i = 0; i < r.members_size(); ++i) {
    auto& m = r.members(i);
    if (m.name().empty() || !names.insert(m.name()).second) {
      error = "members[" + std::to_string(i) + "].name: empty or repeated";
      return std::nullopt;
    }
    s.members_.push_back({m.name(), m.address()});
  }
  if (s.members_.empty()) {
    error = "members: none";
    return std::nullopt;
  }
  for (int i = 0; i < r.owner_size(); ++i) {
    if (r.owner(i).empty()) {
      error = "owner[" + std::to_string(i) + "]: empty";
      return std::nullopt;
    }
    s.owners_.push_back({r.owner(i), r.owner_version(i)});
  }
  return s;
}

}  // namespace healthtwin::cluster
