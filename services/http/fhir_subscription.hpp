#pragma once
// A FHIR R4 Subscription as the Subscriptions R5 Backport (topic-based,
// rest-hook) defines it, and the notifications a node sends for one
// (docs/fhir.md "Subscriptions"): parsing and checking what a client
// posts, the resource read back (header values never shown), the record
// kept in the store, and the notification Bundles — handshake, heartbeat
// and event-notification with its SubscriptionStatus Parameters first.
// Pure functions: no I/O.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "healthtwin/v1/alert.pb.h"

namespace healthtwin::services {

/// The topics a node offers (Subscription.criteria).
enum class subscription_topic {
  alerts,  ///< every alert event: raised, updated, acknowledged, escalated, silenced, resolved (focus: Flag)
  news2,   ///< NEWS2 entering a band, changing within one, leaving them (focus: Flag + the NEWS2 Observation)
};

inline constexpr const char* alerts_topic_url = "urn:healthtwin:fhir:SubscriptionTopic:alerts";
inline constexpr const char* news2_topic_url = "urn:healthtwin:fhir:SubscriptionTopic:news2";

enum class payload_content { empty, id_only, full_resource };

/// What a client asked for, checked.
struct subscription_spec {
  std::string tenant;
  std::string id;  ///< assigned by the node
  subscription_topic topic = subscription_topic::alerts;
  std::string ward;        ///< filter: empty = every ward
  std::string patient_id;  ///< filter: empty = every patient
  v1::Priority min_priority = v1::PRIORITY_UNSPECIFIED;  ///< filter
  std::string endpoint;                                  ///< https URL
  std::vector<std::string> headers;                      ///< "Name: value", sent with every notification
  payload_content content = payload_content::id_only;
  uint32_t heartbeat_s = 0;  ///< 0: no heartbeats
  uint32_t timeout_s = 10;   ///< per notification sent
  std::string reason;
  std::string base_url;  ///< https://host/fhir/{tenant}: how notifications name resources
};

/// How far delivery got; kept with the spec, written before a notification
/// is first sent (the pending event) and after the endpoint accepted it.
struct subscription_progress {
  std::string status = "requested";  ///< requested (handshake pending), active, error
  uint64_t events = 0;               ///< notifications of events accepted: the last event number
  /// Per member ("" = the member holding the subscription): the resume
  /// token in that member's alert log up to which its events are done.
  std::map<std::string, uint64_t> cursors;
  /// The event being notified as number events + 1 (a restart sends it
  /// again with that number): its member and resume token.
  bool pending = false;
  std::string pending_member;
  uint64_t pending_token = 0;
  std::string error;  ///< why the last attempt failed (status error)
};

/// Parses a posted Subscription into `out` (tenant, id and base_url are
/// the caller's to set); an error names the field and quotes at most a
/// bounded prefix of what was sent.
std::optional<std::string> parse_subscription(const std::string& json_text, subscription_spec& out);

/// The Subscription resource as read back: header values shown as "***".
std::string subscription_resource(const subscription_spec& s, const subscription_progress& p);

/// The record kept in the store, and back (nullopt: not a record this
/// version wrote; `why` says what is wrong).
std::string subscription_record(const subscription_spec& s, const subscription_progress& p);
bool parse_subscription_record(const std::string& bytes, subscription_spec& s, subscription_progress& p,
                               std::string& why);

/// Whether an alert event is a notification of the subscription's topic
/// and filters (the node's alert feed applies tenant, ward, patient and
/// priority already; the topic decides the rest).
bool notifies(const subscription_spec& s, const v1::AlertEvent& e);

/// The SubscriptionStatus Parameters ($status and the first entry of
/// every notification).
std::string subscription_status(const subscription_spec& s, const subscription_progress& p);

/// Notification Bundles (type history). `event_number` is the event's
/// place in the subscription's sequence (events-since-subscription-start).
std::string handshake_bundle(const subscription_spec& s, int64_t now_ms);
std::string heartbeat_bundle(const subscription_spec& s, const subscription_progress& p, int64_t now_ms);
std::string event_bundle(const subscription_spec& s, const subscription_progress& p, uint64_t event_number,
                         const v1::AlertEvent& e, int64_t now_ms);

}  // namespace healthtwin::services
