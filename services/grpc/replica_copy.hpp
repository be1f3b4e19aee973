#pragma once
// ClusterService.ReadReplicaCopy: a checkpoint of the node's data
// directory, streamed to a standby replica (docs/multi-region.md).

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include "healthtwin/v1/cluster.pb.h"

namespace healthtwin::storage {
class store;
}

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}

namespace healthtwin::services {

/// The largest `have` list a replica may send (a node holds far fewer
/// table files than this).
inline constexpr size_t max_replica_have = 1'000'000;

/// Bytes of file data in one ReplicaCopyChunk.
inline constexpr size_t replica_chunk_bytes = 1 << 20;

/// The table files the replica holds (name -> size), or INVALID_ARGUMENT
/// naming the first bad entry of `have` (quoting a bounded prefix).
grpc::Status replica_holds(const v1::ReadReplicaCopyRequest& req, std::map<std::string, uint64_t>& out);

/// Copies served to standby replicas, for the SREs' alert on a standby
/// that stopped following (HealthTwinStandbyBehind).
struct replica_metrics {
  explicit replica_metrics(prometheus::Registry& registry);
  prometheus::Counter* sent;     ///< copies streamed whole
  prometheus::Counter* failed;   ///< copies that ended early (the replica went away, or an error)
  prometheus::Gauge* last_sent;  ///< when the last copy streamed whole was made (Unix seconds; 0: never)
};

/// What the stream needs of the node.
struct replica_source {
  storage::store& store;
  std::string scratch_root;  ///< --backup-dir: the copy is made (and removed) under it
  std::string node;          ///< this member's name
  const std::atomic<bool>& stopping;
  replica_metrics* metrics = nullptr;  ///< none when null
};

/// Makes the copy in `{scratch_root}/.replica-copy` (a leftover of an
/// earlier copy removed first), sends its description, then the bytes of
/// every file the replica lacks, and removes the copy. CANCELLED when the
/// caller goes away or the node stops; INTERNAL naming what failed.
grpc::Status stream_replica_copy(const replica_source& src, const std::map<std::string, uint64_t>& holds,
                                 grpc::ServerContext* call, grpc::ServerWriter<v1::ReplicaCopyChunk>* writer);

}  // namespace healthtwin::services
