#pragma once
// The node's FHIR subscriptions (services/http/fhir_subscriptions.hpp)
// wired to its store (storage/subscription_records.hpp) and its alert
// events (services/grpc/alert_feed.hpp).

#include <memory>

#include "services/grpc/api_services.hpp"
#include "services/http/fhir_subscriptions.hpp"

namespace healthtwin::node {

std::unique_ptr<services::fhir_subscriptions> make_fhir_subscriptions(
    const services::fhir_subscription_settings& settings, const services::api_context& ctx);

}  // namespace healthtwin::node
