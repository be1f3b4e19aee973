#pragma once
// Each module's own settings struct, bound once from the node's
// configuration (flags and config file, node_config.hpp). The node fills in
// only what exists at run time: pointers to the parts it started, the port
// it was given, the fingerprints of the keys it loaded.

#include <chrono>
#include <vector>

#include "actors/alerts/alert_hub.hpp"
#include "actors/cluster/shard_map.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/twin/twin.hpp"
#include "services/grpc/api_services.hpp"
#include "services/grpc/token_verifier.hpp"
#include "services/http/fhir_subscriptions.hpp"
#include "services/http/http_server.hpp"
#include "services/node/node_config.hpp"
#include "services/peer/cluster_peers.hpp"
#include "storage/retention.hpp"
#include "storage/store.hpp"

namespace healthtwin::node {

struct node_settings {
  storage::store_settings store;
  services::token_settings tokens;
  storage::retention_settings retention;
  std::chrono::milliseconds retention_interval{};
  unsigned scheduler_threads = 2;
  actors::twin_settings twins;
  actors::alert_hub_settings hub;      ///< index, owns: set at start
  actors::ingest_settings ingest;      ///< index, owns_shard: set at start
  services::http_settings http;
  services::fhir_subscription_settings fhir_subscriptions;
  services::peer_settings peer;        ///< api_port, key fingerprints: set at start
  services::api_settings api;          ///< hand-off settings included
  /// The members the cluster is founded by: --cluster-members, or this
  /// node alone (a single node owning every shard).
  std::vector<cluster::member> founding_members;
  bool clustered = false;              ///< --cluster-members given
};

/// Binds every module's settings from `cfg` (already validated by
/// parse_node_config).
node_settings bind_settings(const node_config& cfg);

}  // namespace healthtwin::node
