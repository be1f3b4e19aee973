#pragma once
// The node's FHIR subscriptions (services/http/fhir_subscriptions.hpp)
// wired to its store (storage/meta_records.hpp), its own alert
// events (services/grpc/alert_feed.hpp) and, in a cluster, the other
// members' (PeerService.FollowAlerts over the peer listener).

#include <memory>

#include "actors/cluster/membership.hpp"
#include "services/grpc/api_services.hpp"
#include "services/http/fhir_subscriptions.hpp"
#include "services/peer/cluster_peers.hpp"

namespace healthtwin::node {

/// `members` null: a single node.
std::unique_ptr<services::fhir_subscriptions> make_fhir_subscriptions(
    const services::fhir_subscription_settings& settings, const services::api_context& ctx,
    const cluster::membership* members, const services::peer_settings& peer);

}  // namespace healthtwin::node
