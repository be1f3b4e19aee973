// --replication-* and --cluster-standbys (ADR 0038-0040): the voters of
// this member's store and which of them this process is, given or derived
// from a StatefulSet's layout.

#include "services/node/replication_config.hpp"

#include <algorithm>
#include <charconv>

namespace healthtwin::node {

namespace {

bool named(const std::vector<cluster::member>& list, const std::string& name) {
  return std::any_of(list.begin(), list.end(), [&](auto& m) { return m.name == name; });
}

}  // namespace

// Pods SET-0..N-1 (ADR 0039): pod p runs member SET-p on the chart's ports
// and, for K = 1..factor-1, the standby of member SET-(p-K) on those ports
// + K x step; this process is pod `cfg.node_name`'s rank `l.rank`, its
// peer listener on `listen_port`. Sets the members, and with a factor
// above 1 the voters, the standbys and which of them this process is.
std::string statefulset_standby(const statefulset_layout& l, uint16_t listen_port, node_config& cfg) {
  auto base = static_cast<int64_t>(listen_port) - int64_t{l.rank} * l.step;
  if (base <= 0)
    return "--replication-standby-rank: --cluster-listen's port is below the rank's step";
  cfg.cluster_members = cluster::statefulset_members(l.set, l.service, l.replicas, static_cast<uint16_t>(base));
  auto prefix = l.set + "-";
  auto pod = cfg.node_name;
  uint32_t p = 0;
  auto [end, ec] = std::from_chars(pod.data() + std::min(prefix.size(), pod.size()), pod.data() + pod.size(), p);
  if (pod.rfind(prefix, 0) != 0 || ec != std::errc{} || end != pod.data() + pod.size() || p >= l.replicas)
    return "--node-name: \"" + pod.substr(0, 128) + "\" is not a pod of StatefulSet " + l.set;
  auto factor = cfg.replication_factor;
  if (l.rank >= factor && l.rank != 0)
    return "--replication-standby-rank: " + std::to_string(l.rank) + " is not below --replication-factor " +
           std::to_string(factor);
  if (factor <= 1)
    return {};
  if (factor > l.replicas)
    return "--replication-factor: " + std::to_string(factor) + " voters need as many pods (" +
           std::to_string(l.replicas) + ")";
  auto rlisten = split_host_port(cfg.replication_listen);
  if (!rlisten)
    return "--replication-listen: a replicated member needs a replication listener (host:port)";
  auto rbase = static_cast<int64_t>(rlisten->second) - int64_t{l.rank} * l.step;
  auto name = [&](uint32_t i) { return prefix + std::to_string(i); };
  auto host = [&](uint32_t i) { return name(i) + "." + l.service + ":"; };
  uint32_t m = (p + l.replicas - l.rank) % l.replicas;
  cfg.node_name = name(m);
  cfg.replication_self = l.rank == 0 ? name(m) : name(m) + "@" + pod;
  cfg.replication_members = {{name(m), host(m) + std::to_string(rbase)}};
  for (uint32_t k = 1; k < factor; ++k) {
    auto j = (m + k) % l.replicas;
    cfg.replication_members.push_back({name(m) + "@" + name(j), host(j) + std::to_string(rbase + k * l.step)});
  }
  cfg.cluster_standbys.clear();
  for (uint32_t i = 0; i < l.replicas; ++i)
    for (uint32_t k = 1; k < factor; ++k)
      cfg.cluster_standbys.push_back({name(i), host((i + k) % l.replicas) + std::to_string(base + k * l.step)});
  return {};
}

// --replication-*: this member's store is a group of `factor` voters
// (ADR 0039): the member itself (its home) and its standbys, each with its
// replication listener in --replication-members; this process is the voter
// --replication-self (default: the member). --cluster-standbys says where
// members' standbys serve when they lead. Why not, or empty.
std::string check_replication(const std::string& members, const std::string& standbys, node_config& cfg) {
  if (!standbys.empty() && !cfg.cluster_standbys.empty())
    return "--cluster-standbys: the StatefulSet's layout names them";
  if (!standbys.empty()) {
    auto parsed = cluster::parse_members(standbys, true);
    if (!parsed.error.empty())
      return "--cluster-standbys: " + parsed.error;
    for (auto& s : parsed.members)
      if (!named(cfg.cluster_members, s.name))
        return "--cluster-standbys: \"" + s.name + "\" is not among --cluster-members";
    cfg.cluster_standbys = std::move(parsed.members);
  }
  if (cfg.replication_self.empty())
    cfg.replication_self = cfg.node_name;
  if (cfg.replication_factor == 1) {
    if (!members.empty())
      return "--replication-members: needs --replication-factor above 1";
    if (cfg.replication_self != cfg.node_name)
      return "--replication-self: a standby needs --replication-factor above 1";
    return {};
  }
  if (cfg.cluster_members.empty())
    return "--replication-factor: replicates a member's store on other members; a single node has none";
  if (cfg.replication_factor % 2 == 0)
    return "--replication-factor: must be odd (" + std::to_string(cfg.replication_factor) +
           " voters tolerate no more failures than " + std::to_string(cfg.replication_factor - 1) + ")";
  if (cfg.insecure_plaintext)
    return "--replication-factor: replication runs over mutual TLS; not with --insecure-plaintext";
  if (cfg.encryption_key_file.empty())
    return "--replication-factor: needs --encryption-key-file (the members' shared node key seals the "
           "replicated batches)";
  if (!split_host_port(cfg.replication_listen))
    return "--replication-listen: a replicated member needs a replication listener (host:port)";
  if (!cfg.replication_members.empty())  // a StatefulSet's layout
    return members.empty() ? std::string{} : "--replication-members: the StatefulSet's layout names them";
  if (members.empty())
    return "--replication-members: name the " + std::to_string(cfg.replication_factor) +
           " voters of this member's store (the member and its standbys): NAME=HOST:PORT,...";
  auto parsed = cluster::parse_members(members);
  if (!parsed.error.empty())
    return "--replication-members: " + parsed.error;
  if (parsed.members.size() != cfg.replication_factor)
    return "--replication-members: " + std::to_string(parsed.members.size()) + " voters listed, not the " +
           std::to_string(cfg.replication_factor) + " of --replication-factor";
  if (!named(parsed.members, cfg.node_name))
    return "--replication-members: must list the member \"" + cfg.node_name + "\" itself (its home voter)";
  if (!named(parsed.members, cfg.replication_self))
    return "--replication-members: must list --replication-self \"" + cfg.replication_self + "\"";
  for (auto& v : parsed.members)
    if (v.name != cfg.node_name && named(cfg.cluster_members, v.name))
      return "--replication-members: \"" + v.name +
             "\" is another member; a member's standbys are processes of their own (ADR 0039)";
  cfg.replication_members = std::move(parsed.members);
  return {};
}

}  // namespace healthtwin::node
