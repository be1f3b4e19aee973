#pragma once
// The plan of a change of members (ClusterService.ChangeMembers, ADR 0014),
// worked out without I/O: which members hear of the change, and which
// shards move from which member to which, a step at a time. The peer layer
// (services/peer/member_change.cpp) carries it out.

#include <cstdint>
#include <string>
#include <vector>

#include "actors/cluster/cluster_state.hpp"

namespace healthtwin::cluster {

/// One step of a change: `shards` move from `from` to `to` in one hand-off.
struct handoff_step {
  std::string from;
  std::string to;
  std::vector<uint32_t> shards;
  friend bool operator==(const handoff_step&, const handoff_step&) = default;
};

/// The members of `current` and of `target` together, in `current`'s order
/// and then `target`'s new ones; a member in both takes its address from
/// `target`. Every one of them learns both lists before a shard moves, so
/// a member leaving still knows where its shards go.
std::vector<member> members_of_both(const std::vector<member>& current,
                                    const std::vector<member>& target);

/// The hand-offs that take `before`'s owners to the rendezvous placement
/// over `target`: only shards whose owner changes, in shard order, grouped
/// by (old owner, new owner) into steps of at most `per_step` shards
/// (per_step > 0). Empty when nothing moves.
std::vector<handoff_step> plan_handoff(const cluster_state& before, const std::vector<member>& target,
                                       uint32_t per_step);

/// "3,4,17": shard numbers as logs and reasons show them.
std::string shard_list(const std::vector<uint32_t>& shards);

}  // namespace healthtwin::cluster
