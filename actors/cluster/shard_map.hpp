#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace healthtwin::cluster {

/// A member of the cluster: its name (unique, stable: a StatefulSet pod's
/// name) and the address of its peer port.
struct member {
  std::string name;
  std::string address;  ///< host:port of the peer listener

  friend bool operator==(const member&, const member&) = default;
};

/// Which member owns each virtual shard: rendezvous (highest random weight)
/// hashing over the members, so adding or removing a member moves only the
/// shards that member gains or loses. Immutable; cheap to copy.
class shard_map {
public:
  /// Rendezvous placement: `members` non-empty with unique names; `shards` > 0.
  shard_map(std::vector<member> members, uint32_t shards);
  /// An explicit table (membership's snapshot of the cluster state):
  /// `owners[s]` indexes `members`; `listed[m]` false for a member that
  /// is no longer in the member list.
  shard_map(std::vector<member> members, std::vector<uint32_t> owners, std::vector<bool> listed);

  /// The weight of `member_name` for `shard`: XXH64 of the name's bytes
  /// with the shard number as seed. Named and stable like twin_hash: test
  /// vectors are pinned; changing it moves shards between nodes.
  static uint64_t weight(std::string_view member_name, uint32_t shard) noexcept;

  /// Name of the placement hash, exchanged by members before they join.
  static constexpr std::string_view hash_name = "hrw-xxh64-shardseed";

  const std::vector<member>& members() const noexcept { return members_; }
  uint32_t shards() const noexcept { return static_cast<uint32_t>(owners_.size()); }

  /// Index into members() of the owner of `shard` (< shards()).
  uint32_t owner(uint32_t shard) const noexcept { return owners_[shard]; }
  const std::vector<uint32_t>& owners() const noexcept { return owners_; }

  /// Index of the member called `name`, if any.
  std::optional<uint32_t> find(std::string_view name) const noexcept;

  /// How many shards member `index` owns.
  uint32_t owned_by(uint32_t index) const noexcept;

  /// False for a member removed from the member list (it owns no shard and
  /// is neither probed nor asked).
  bool listed(uint32_t index) const noexcept { return listed_.empty() || listed_[index]; }

private:
  std::vector<member> members_;
  std::vector<uint32_t> owners_;
  std::vector<bool> listed_;  // empty: all listed
};

/// Parses "name=host:port,name=host:port,..." (the --cluster-members flag).
/// The error names the bad item; names must be unique unless
/// `names_repeat` (several standbys of one member), addresses always.
struct parsed_members {
  std::vector<member> members;
  std::string error;  ///< empty when parsed
};
parsed_members parse_members(std::string_view list, bool names_repeat = false);

/// The members of a Kubernetes StatefulSet `set` with `replicas` pods behind
/// the headless Service `service`: `set-0` at `set-0.service:port`, ...
std::vector<member> statefulset_members(std::string_view set, std::string_view service,
                                        uint32_t replicas, uint16_t port);

}  // namespace healthtwin::cluster
