#pragma once
// --replication-* and --cluster-standbys (ADR 0038-0040), checked and
// completed in a node_config by parse_node_config.

#include <cstdint>
#include <string>

#include "services/node/node_config.hpp"

namespace healthtwin::node {

/// A StatefulSet's pods (--cluster-statefulset) and this container's rank.
struct statefulset_layout {
  std::string set, service;
  uint32_t replicas = 0, rank = 0, step = 100;
};

/// Pods SET-0..N-1: pod p runs member SET-p on the chart's ports and, for
/// K = 1..factor-1, the standby of member SET-(p-K) on those ports + K x
/// step; this process is pod `cfg.node_name`'s rank `l.rank`, its peer
/// listener on `listen_port`. Sets the members, and with a factor above 1
/// the voters, the standbys and which of them this process is. Why not, or
/// empty.
std::string statefulset_standby(const statefulset_layout& l, uint16_t listen_port, node_config& cfg);

/// Checks the replication flags (`members`: --replication-members, `standbys`:
/// --cluster-standbys, as given) against cfg and fills cfg's lists. Why
/// not (naming the flag), or empty.
std::string check_replication(const std::string& members, const std::string& standbys, node_config& cfg);

}  // namespace healthtwin::node
