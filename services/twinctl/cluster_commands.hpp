#pragma once
// twinctl's cluster commands: they call a running node's ClusterService.

#include <cstdint>
#include <string>
#include <vector>

#include "services/grpc/client_channel.hpp"

namespace healthtwin::twinctl {

/// `twinctl cluster status`: prints the members (state, shards owned) and
/// the state digest as the node at `node` sees them. Exit code: 0, or 2 on
/// a failed call.
int print_cluster_status(const services::channel_settings& node);

/// `twinctl cluster change`: ClusterService.ChangeMembers with `members`
/// ("NAME=HOST:PORT" each, the whole new list), then prints every move and
/// the longest unavailability. Exit code: 0; 1 when the change stopped part
/// way (run it again); 2 on a usage error.
int change_members(const services::channel_settings& node, const std::vector<std::string>& members,
                   uint32_t shards_per_step);

/// `twinctl cluster backup NAME`: ClusterService.BackupNode on the node at
/// `node`; prints where it wrote the backup, its files and size. Exit
/// codes as api_commands.hpp says.
int backup_node(const services::channel_settings& node, const std::string& name, bool json);

}  // namespace healthtwin::twinctl
