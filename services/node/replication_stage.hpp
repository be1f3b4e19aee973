#pragma once
// The node's replicated stores (docs/cluster.md "Replication", ADR 0038):
// the replication listener, this member's own group — its store's writes go
// through it — and a replica of every member whose group it belongs to
// (its R-1 predecessors in the ring of member names), each in
// <data dir>/replicas/<member> with its Raft log in <data dir>/raft/<member>.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "actors/cluster/shard_map.hpp"
#include "storage/store.hpp"

namespace prometheus {
class Registry;
}

namespace healthtwin::services {
class raft_group;
class raft_tunnels;
class replicated_store;
}  // namespace healthtwin::services

namespace healthtwin::node {

struct replication_settings {
  std::string self;
  uint32_t factor = 1;
  /// Every member's replication listener (the same names as the cluster's).
  std::vector<cluster::member> members;
  std::string listen;
  std::string cert_file, key_file, ca_file;  ///< PEM files (the peer listener's)
  std::string data_dir;
  storage::store_settings store;  ///< the own store's settings; replicas differ in data_dir
  std::chrono::milliseconds election_timeout{1'000};
  std::chrono::milliseconds commit_timeout{2'000};
};

/// The members whose groups `self` is a voter of, its own first: member i's
/// voters are members i, i+1, ..., i+factor-1 of the list sorted by name.
std::vector<std::string> groups_of(const std::vector<cluster::member>& members, const std::string& self,
                                   uint32_t factor);

class replication_stage {
public:
  /// Starts the listener and every group; from here on `own`'s writes go
  /// through this member's group. nullptr and `why` when a file, port or
  /// directory is refused.
  static std::unique_ptr<replication_stage> start(const replication_settings& s, storage::store& own,
                                                  std::string& why);
  /// Stops every group (own writes are refused from the first moment).
  ~replication_stage();

  /// Waits until this member leads its own group and everything committed
  /// before is applied to its store (then the node may read it and serve).
  /// Says every 5 s what it waits for; false after `timeout`.
  bool wait_until_leading(std::chrono::milliseconds timeout);

  /// healthtwin_replication_* (labels: member names only): per store this
  /// member holds, whether it leads its group, the term and the index
  /// applied; the own store's writes by outcome and their commit seconds.
  /// Registered on `registry`; refresh() before each scrape.
  void expose(prometheus::Registry& registry);
  void refresh();

private:
  replication_stage() = default;
  struct replica;
  replication_settings settings_;
  storage::store* own_ = nullptr;
  std::chrono::steady_clock::time_point next_note_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::unique_ptr<services::raft_tunnels> tunnels_;
  std::vector<std::unique_ptr<replica>> replicas_;  // the own group first
  struct gauges;
  std::unique_ptr<gauges> gauges_;
};

}  // namespace healthtwin::node
