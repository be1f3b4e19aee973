#pragma once
// Private to services/grpc: AlertService's stream (alert_stream.cpp), its
// alarm burden report (alarm_burden_service.cpp) and the filter fields they
// share with ListAlerts (alert_service.cpp).

#include <string>

#include "actors/alerts/alert_hub.hpp"
#include "healthtwin/internal/peer.grpc.pb.h"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "services/grpc/service_env.hpp"

namespace healthtwin::services {

/// The alert filter of a request: `parent` a tenant, `patient` (optional)
/// one of its patients, `ward` a label, `min` a known priority;
/// INVALID_ARGUMENT naming each bad field otherwise.
grpc::Status parse_alert_filter(const std::string& parent, const std::string& ward,
                                v1::Priority min, const std::string& patient,
                                actors::alert_filter& out);

/// AlertService.StreamAlerts.
grpc::Status stream_alerts(service_env& env, grpc::ServerContext* call,
                           const v1::StreamAlertsRequest& req,
                           grpc::ServerWriter<v1::AlertEvent>* writer);

/// PeerService.FollowAlerts: this node's alert events of a tenant from a
/// position on, until the caller (a member) ends the stream or the node stops.
grpc::Status follow_alerts(service_env& env, grpc::ServerContext& call, const internal::AlertFollowRequest& req,
                           grpc::ServerWriter<v1::AlertEvent>* writer);

/// AlertService.GetAlarmBurden (alarm_burden_service.cpp).
grpc::Status get_alarm_burden(service_env& env, grpc::ServerContext* call,
                              const v1::GetAlarmBurdenRequest& req, v1::AlarmBurden* resp);

}  // namespace healthtwin::services
