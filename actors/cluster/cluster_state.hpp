#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/cluster/shard_map.hpp"

namespace healthtwin::cluster {

/// Who owns one virtual shard in the replicated table: the member's name
/// and how many times the shard changed hands (each hand-off adds one).
struct shard_owner {
  std::string member;
  uint64_t version = 0;

  friend bool operator==(const shard_owner&, const shard_owner&) = default;
};

/// The cluster as every member keeps it (docs/cluster.md, "Hand-off"): the
/// member list and the owner of every virtual shard. It starts as the
/// rendezvous placement over the founding members (every shard at version
/// 0) and changes only by hand-offs, each of which only the shard's current
/// owner makes (version + 1), and by member-list changes (members_version
/// + 1, made by the member running ClusterService.ChangeMembers). Members
/// exchange it and merge: the newer member list, and per shard the higher
/// version. So every member converges on the same table whatever order
/// the changes reach it in. A plain value type; not thread-safe.
class cluster_state {
public:
  /// A cluster founded by `members` (non-empty, unique names) with `shards`
  /// virtual shards: each shard owned by its rendezvous owner, version 0.
  static cluster_state found(const std::vector<member>& members, uint32_t shards);

  uint32_t shards() const noexcept { return static_cast<uint32_t>(owners_.size()); }
  /// Fingerprint of the founding members' names: members of one cluster
  /// have the same, whatever changed since.
  const std::string& founding() const noexcept { return founding_; }
  uint64_t members_version() const noexcept { return members_version_; }
  const std::vector<member>& members() const noexcept { return members_; }
  const std::vector<shard_owner>& owners() const noexcept { return owners_; }
  const shard_owner& owner(uint32_t shard) const { return owners_[shard]; }

  /// Empty when this state and `other` describe the same cluster (founding
  /// and shard count) and can merge; otherwise what differs.
  std::string incompatible(const cluster_state& other) const;

  /// Takes what `other` knows that is newer: its member list when its
  /// members_version is higher, and each shard's owner whose version is
  /// higher. Call only when incompatible() is empty. True when anything
  /// changed.
  bool merge(const cluster_state& other);

  /// Replaces the member list (members_version + 1). `members` non-empty
  /// with unique names.
  void set_members(std::vector<member> members);

  /// Gives `shard` to `member` (its version + 1): only its owner does this.
  void hand_over(uint32_t shard, std::string member);

  /// The rendezvous owner of every shard among `members`: where a change of
  /// the member list moves the shards (only those whose owner changes).
  static std::vector<std::string> placement(const std::vector<member>& members, uint32_t shards);

  /// A short fingerprint of the whole state (16 hex digits): members that
  /// say the same hold the same table.
  std::string digest() const;

  /// The persisted and exchanged form (internal::ClusterStateRecord).
  std::string encode() const;
  /// Parses and checks encode()'s form; nullopt with `error` naming the
  /// field when it is not valid.
  static std::optional<cluster_state> decode(std::string_view bytes, std::string& error);

  friend bool operator==(const cluster_state&, const cluster_state&) = default;

private:
  std::string founding_;
  uint64_t members_version_ = 0;
  std::vector<member> members_;
  std::vector<shard_owner> owners_;
};

}  // namespace healthtwin::cluster
