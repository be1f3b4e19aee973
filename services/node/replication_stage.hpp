#pragma once
// The node's replicated store (docs/cluster.md "Replication", ADR 0038,
// 0039): the replication listener and the member's group — its store's
// writes go through it, its Raft log is in <data dir>/raft. This process is
// one voter of the group: the member itself (its home) or a standby, a
// process of its own that holds a replica of the member's store and serves
// the member while it leads the group.

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
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
  std::string member;  ///< whose store this is (--node-name)
  std::string self;    ///< the voter this process is (--replication-self)
  /// The group's voters and their replication listeners.
  std::vector<cluster::member> voters;
  std::string listen;
  std::string cert_file, key_file, ca_file;  ///< PEM files (the peer listener's)
  std::string data_dir;
  uint32_t snapshot_entries = 4096;
  std::chrono::milliseconds election_timeout{1'000};
  std::chrono::milliseconds commit_timeout{2'000};
};

class replication_stage {
public:
  /// Starts the listener and every group; from here on `own`'s writes go
  /// through this member's group. nullptr and `why` when a file, port or
  /// directory is refused.
  static std::unique_ptr<replication_stage> start(const replication_settings& s, storage::store& own,
                                                  std::string& why);
  /// Stops every group (own writes are refused from the first moment).
  ~replication_stage();

  /// Waits until this process leads the group and everything committed
  /// before is applied to its store (then the node may read it and serve).
  /// A standby also waits until it led for an election timeout: meanwhile
  /// it offers leadership to the member (ADR 0039), which takes it if it is
  /// up and has the log. Says every 5 s what it waits for; false after
  /// `timeout`.
  bool wait_until_leading(std::chrono::milliseconds timeout);
  /// Whether this process leads the group (after wait_until_leading: it
  /// still may serve; once false it must stop serving).
  bool leading() const;
  /// A copy of the leader's store is staged beside the data directory
  /// (this replica was behind the group's snapshot, ADR 0040): the process
  /// must start again, and installs it before it opens the store.
  bool copy_staged() const { return copy_staged_.load(); }
  /// The term this process led in when wait_until_leading returned.
  uint64_t term_served() const { return term_; }

  /// healthtwin_replication_* (labels: member names only): whether this
  /// process leads the store's group, the term and the index applied; the
  /// writes by outcome and their commit seconds.
  /// Registered on `registry`; refresh() before each scrape.
  void expose(prometheus::Registry& registry);
  void refresh();

private:
  replication_stage() = default;
  replication_settings settings_;
  storage::store* own_ = nullptr;
  std::chrono::steady_clock::time_point next_note_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  uint64_t term_ = 0;
  uint64_t led_term_ = 0;  // a standby: the term it was first seen leading, since when
  std::chrono::steady_clock::time_point led_since_;
  // Copies: sent to voters behind the snapshot, or fetched from the leader.
  void fetch_copy_if_needed();
  // Runs `work` on a thread of its own, joining those that finished.
  void run_copy(std::function<void()> work);
  struct copy_job {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex copies_mutex_;
  std::list<copy_job> copies_;
  std::atomic<uint64_t> copies_sent_{0};
  std::atomic<bool> fetching_{false}, copy_staged_{false};
  std::chrono::steady_clock::time_point next_fetch_{};

  std::unique_ptr<services::raft_tunnels> tunnels_;
  std::unique_ptr<services::replicated_store> machine_;
  std::unique_ptr<services::raft_group> group_;
  struct gauges;
  std::unique_ptr<gauges> gauges_;
};

}  // namespace healthtwin::node
