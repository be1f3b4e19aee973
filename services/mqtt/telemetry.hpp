#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "healthtwin/v1/common.pb.h"
#include "healthtwin/v1/ingest.pb.h"
#include "healthtwin/v1/telemetry.pb.h"

namespace healthtwin::mqtt {

/// Why a telemetry message cannot be ingested: the field (of the payload,
/// or "topic") and what is wrong with it, quoting at most a bounded prefix
/// of what was sent.
struct payload_error {
  std::string field;
  std::string reason;
};

/// The most readings one message may carry (the ingest API's request limit).
inline constexpr size_t max_readings_per_message = 10'000;

/// What a device publishes: readings, or the state it runs (the device
/// shadow's reported side).
enum class topic_kind { telemetry, reported };

/// healthtwin/{tenant}/devices/{device}/{telemetry|reported}, for one of
/// `tenants`.
struct telemetry_topic {
  std::string tenant;
  std::string device;  ///< the device id (a valid twin id)
  topic_kind kind = topic_kind::telemetry;
  std::string device_name() const { return "tenants/" + tenant + "/devices/" + device; }
};

/// healthtwin/{tenant}/devices/{device}/commands: where a device's desired
/// configuration is published (retained), from its resource name; empty
/// when `device_name` is not tenants/{tenant}/devices/{device}.
std::string commands_topic(std::string_view device_name);

/// The topic's tenant, device and kind; nullopt with `why` (field "topic")
/// when the topic is not a device topic of one of `tenants` or the device
/// segment is not a device id.
std::optional<telemetry_topic> parse_topic(std::string_view topic, const std::set<std::string, std::less<>>& tenants,
                                           payload_error& why);

/// How a payload is encoded: said by an MQTT 5 content type, else told by
/// its first byte ('{' after optional white space: JSON, else protobuf).
enum class payload_format { protobuf, json };
std::optional<payload_format> format_of(std::string_view payload, std::string_view content_type, payload_error& why);

/// Decodes and checks a TelemetryPayload (docs/mqtt.md): version 1, at least
/// one reading, at most max_readings_per_message, parallel arrays of one
/// length (quality empty or of that length). The values themselves are
/// checked by the node, reading by reading.
std::optional<v1::TelemetryPayload> decode_payload(std::string_view payload, payload_format format,
                                                   payload_error& why);

/// Decodes a device's reported state: a healthtwin.v1.DeviceConfig in
/// protobuf or proto3 JSON (its settings and firmware are checked by the
/// node).
std::optional<v1::DeviceConfig> decode_config(std::string_view payload, payload_format format, payload_error& why);

/// The ingest request of one decoded message.
v1::IngestRequest to_ingest_request(const telemetry_topic& topic, v1::TelemetryPayload&& payload, uint64_t batch_id);

/// A rejection's field in the payload's words: "devices[3].value[5]" (the
/// message's readings being the request's devices[3]) is "value[5]".
std::string payload_field(std::string_view ingest_field);

}  // namespace healthtwin::mqtt
