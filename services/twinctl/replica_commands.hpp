#pragma once
// twinctl replica: a standby copy of a node's data directory in another
// region, kept fresh by following the node and promoted after a disaster
// (docs/multi-region.md, "Disaster recovery"). Exit codes as
// api_commands.hpp says.

#include <chrono>
#include <string>

#include "services/grpc/client_channel.hpp"

namespace healthtwin::twinctl {

struct follow_options {
  std::string dir;                          ///< the replica directory
  std::chrono::milliseconds interval{10'000};  ///< from the start of one copy to the next
  bool once = false;                        ///< one copy, then exit (its outcome is the exit code)
  size_t keep = 2;                          ///< complete copies kept
};

/// `twinctl replica follow`: reads a copy of the node's data
/// (ClusterService.ReadReplicaCopy) every interval into DIR, receiving only
/// the table files the newest copy lacks and hard-linking the others, and
/// prints a line per copy. A failed copy is retried at the next interval;
/// the last complete copy is never touched by it. Runs until SIGINT or
/// SIGTERM (exit 0), or once.
int follow_replica(const services::channel_settings& node, const follow_options& o);

/// `twinctl replica promote`: moves the newest complete copy of DIR to
/// `data_dir` (which must not exist), to start a node on it with the
/// primary's keys; prints its recovery point. Refused while a follower
/// holds DIR.
int promote_replica(const std::string& dir, const std::string& data_dir, bool json);

/// `twinctl replica status`: the newest complete copy of DIR and its age.
/// Exit code 1 when DIR holds none.
int replica_status(const std::string& dir, bool json);

}  // namespace healthtwin::twinctl
