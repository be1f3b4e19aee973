#pragma once
// One Raft group (C-Raft, Debian's libraft; docs/adr/0036, 0037): a log
// replicated to its members, durable on a majority before an entry counts,
// applied in log order to a state machine on every member. The group runs
// on a libuv loop thread of its own; its members talk through raft_tunnels
// (mutual TLS), never plain TCP.
//
// Fencing: an entry commits only in the term of the leader that proposed it,
// with a majority of that term. A deposed leader's proposals fail (their
// callback says so), so what it acknowledges from a commit was committed.
// A failed proposal may still be committed later by the next leader: the
// state machine must treat a resent entry as the same entry (the ingest
// log's sequence windows do).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "services/peer/raft_tunnels.hpp"

namespace healthtwin::services {

/// A member's Raft id: a hash of its name (never 0), equal on every member.
uint64_t raft_id_of(std::string_view member);

struct raft_group_settings {
  /// The group's id, equal on every member; the tunnels route by it.
  uint64_t group = 0;
  /// The voters when the group is created. A data directory that already
  /// holds the group keeps the configuration in its log.
  std::vector<raft_peer> members;
  /// Where the group's log segments, metadata and snapshots live; created
  /// if missing. One directory per group and member.
  std::string dir;
  /// Time without a leader's heartbeat before a follower stands for
  /// election (randomised up to twice that): the failover time. 1000 ms.
  std::chrono::milliseconds election_timeout{1000};
  /// Leader heartbeat interval. 100 ms.
  std::chrono::milliseconds heartbeat{100};
  /// Entries after which the state machine is snapshotted and the log
  /// truncated behind it (keeping `snapshot_trailing` entries for followers
  /// slightly behind).
  unsigned snapshot_threshold = 4096;
  unsigned snapshot_trailing = 1024;
  /// The member that should lead (the store's own member): another leader
  /// hands leadership to it whenever it is up and caught up. Empty: any.
  std::string home;
  /// The key that seals every entry and snapshot (AES-256-GCM, the group id
  /// authenticated) before raft stores or sends it: derived from the node
  /// key, equal on every member. Without one (a plaintext data directory,
  /// development only) entries are stored as they are.
  std::optional<std::array<uint8_t, 32>> entry_key;
};

/// What a group replicates into. Called on the group's thread only. An
/// entry that does not open (altered, or sealed under another key) is never
/// applied: the group stops applying and logs why.
class raft_state_machine {
public:
  virtual ~raft_state_machine() = default;
  /// A committed entry, in log order, on every member (again after a
  /// restart, from the last snapshot on).
  virtual void apply(uint64_t index, std::string_view entry) = 0;
  /// The state up to the last applied entry, for the log's truncation and
  /// for members too far behind.
  virtual std::string snapshot() = 0;
  /// Replaces the state with a snapshot; false when it does not decode.
  virtual bool restore(std::string_view snapshot) = 0;
};

/// The outcome of a proposal: committed (durable on a majority of the term
/// `term`, applied here) at `index`, or not (`error` says why).
struct raft_commit {
  uint64_t index = 0;
  uint64_t term = 0;
  std::string error;
  /// Failed after raft took it (a deposed leader, a stop): another leader
  /// may still commit it. A refusal before (not the leader) is not in doubt.
  bool in_doubt = false;
  bool committed() const { return error.empty(); }
};

/// A group as this member sees it.
struct raft_status {
  bool leading = false;
  uint64_t term = 0;
  std::string leader;  // empty when none is known
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
};

class raft_group {
public:
  using committed_fn = std::function<void(const raft_commit&)>;

  /// Starts member `tunnels.self()` of the group; nullptr and `why` when the
  /// directory cannot hold it or the member is not among `members`.
  static std::unique_ptr<raft_group> start(const raft_group_settings& s, raft_tunnels& tunnels,
                                           raft_state_machine& machine, std::string& why);
  /// Stops the member (pending proposals fail); the tunnels must outlive it.
  ~raft_group();
  raft_group(const raft_group&) = delete;
  raft_group& operator=(const raft_group&) = delete;

  /// Proposes `entry` (any thread). `done` runs on the group's thread once
  /// it is committed and applied, or failed: at once when this member does
  /// not lead.
  void propose(std::string entry, committed_fn done);
  /// `done` once every entry committed before it is applied here (a
  /// leader's first act; fails when this member does not lead).
  void barrier(committed_fn done);
  /// When this member leads: hands leadership to the most up-to-date other
  /// voter (one that cannot serve, e.g. whose store needs a copy).
  void hand_over();
  /// The group's state (any thread but the group's own: it asks the loop).
  raft_status status() const;

private:
  struct impl;
  explicit raft_group(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::services
