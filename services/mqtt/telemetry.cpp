#include "services/mqtt/telemetry.hpp"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"

namespace healthtwin::mqtt {

namespace {

/// The topic's levels; `parts` must hold exactly five.
bool split_levels(std::string_view topic, std::string_view (&parts)[5]) {
  size_t n = 0;
  while (true) {
    auto slash = topic.find('/');
    if (n == 5)
      return false;
    parts[n++] = topic.substr(0, slash);
    if (slash == std::string_view::npos)
      break;
    topic.remove_prefix(slash + 1);
  }
  return n == 5;
}

bool fail(payload_error& why, std::string field, std::string reason) {
  why = {std::move(field), std::move(reason)};
  return false;
}

/// `payload` as a `what` in `format` (proto3 JSON: unknown fields refused,
/// so a misspelt field is an error rather than silently nothing).
bool parse(std::string_view payload, payload_format format, google::protobuf::Message& out, std::string_view what,
           payload_error& why) {
  if (format == payload_format::json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto st = google::protobuf::util::JsonStringToMessage(google::protobuf::StringPiece{payload.data(), payload.size()},
                                                          &out, options);
    return st.ok() ||
           fail(why, "payload",
                fmt::format("not a {} in JSON: {}", what, models::quoted_input(std::string(st.message()), 160)));
  }
  return out.ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
         fail(why, "payload", fmt::format("not a {} in protobuf (nor a JSON object)", what));
}

}  // namespace

std::optional<telemetry_topic> parse_topic(std::string_view topic, const std::set<std::string, std::less<>>& tenants,
                                           payload_error& why) {
  std::string_view l[5];
  if (!split_levels(topic, l) || l[0] != "healthtwin" || l[2] != "devices" ||
      (l[4] != "telemetry" && l[4] != "reported")) {
    fail(why, "topic",
         fmt::format("{} is not healthtwin/{{tenant}}/devices/{{device}}/telemetry (or /reported)",
                     models::quoted_input(topic)));
    return std::nullopt;
  }
  if (!tenants.contains(l[1])) {
    fail(why, "topic", fmt::format("tenant {} is not served by this bridge", models::quoted_input(l[1])));
    return std::nullopt;
  }
  if (!models::is_valid_id(l[3])) {
    fail(why, "topic",
         fmt::format("device {} is not a device id ([a-z0-9-], up to 63)", models::quoted_input(l[3])));
    return std::nullopt;
  }
  return telemetry_topic{std::string{l[1]}, std::string{l[3]},
                         l[4] == "telemetry" ? topic_kind::telemetry : topic_kind::reported};
}

std::string commands_topic(std::string_view device_name) {
  auto name = models::parse_twin_name(device_name);
  if (!name || name->kind != models::twin_kind::device)
    return {};
  return fmt::format("healthtwin/{}/devices/{}/commands", name->tenant, name->id);
}

std::optional<payload_format> format_of(std::string_view payload, std::string_view content_type, payload_error& why) {
  if (content_type == "application/json")
    return payload_format::json;
  if (content_type == "application/x-protobuf" || content_type == "application/protobuf")
    return payload_format::protobuf;
  if (!content_type.empty()) {
    fail(why, "content_type",
         fmt::format("{} is neither application/json nor application/x-protobuf", models::quoted_input(content_type)));
    return std::nullopt;
  }
  auto first = payload.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && payload[first] == '{' ? payload_format::json : payload_format::protobuf;
}

std::optional<v1::TelemetryPayload> decode_payload(std::string_view payload, payload_format format,
                                                   payload_error& why) {
  v1::TelemetryPayload p;
  if (!parse(payload, format, p, "TelemetryPayload", why))
    return std::nullopt;
  if (p.version() != 1) {
    fail(why, "version", fmt::format("must be 1, is {}", p.version()));
    return std::nullopt;
  }
  auto n = static_cast<size_t>(p.sequence_size());
  if (n == 0) {
    fail(why, "sequence", "no readings");
    return std::nullopt;
  }
  if (n > max_readings_per_message) {
    fail(why, "sequence", fmt::format("{} readings, at most {} per message", n, max_readings_per_message));
    return std::nullopt;
  }
  auto same = [&](int size, const char* field) {
    return static_cast<size_t>(size) == n ||
           fail(why, field, fmt::format("{} entries for {} sequence numbers", size, n));
  };
  if (!same(p.time_ms_size(), "time_ms") || !same(p.metric_size(), "metric") || !same(p.value_size(), "value") ||
      (p.quality_size() != 0 && !same(p.quality_size(), "quality")))
    return std::nullopt;
  return p;
}

std::optional<v1::DeviceConfig> decode_config(std::string_view payload, payload_format format, payload_error& why) {
  v1::DeviceConfig c;
  if (!parse(payload, format, c, "DeviceConfig", why))
    return std::nullopt;
  return c;
}

v1::IngestRequest to_ingest_request(const telemetry_topic& topic, v1::TelemetryPayload&& payload, uint64_t batch_id) {
  v1::IngestRequest req;
  req.set_batch_id(batch_id);
  auto* d = req.add_devices();
  d->set_device(topic.device_name());
  d->mutable_sequence()->Swap(payload.mutable_sequence());
  d->mutable_time_ms()->Swap(payload.mutable_time_ms());
  d->mutable_metric()->Swap(payload.mutable_metric());
  d->mutable_value()->Swap(payload.mutable_value());
  d->mutable_quality()->Swap(payload.mutable_quality());
  return req;
}

std::string payload_field(std::string_view ingest_field) {
  constexpr std::string_view prefix = "devices[";
  if (ingest_field.starts_with(prefix)) {
    auto end = ingest_field.find("].", prefix.size());
    if (end != std::string_view::npos &&
        ingest_field.substr(prefix.size(), end - prefix.size()).find_first_not_of("0123456789") ==
            std::string_view::npos)
      ingest_field.remove_prefix(end + 2);
  }
  return std::string{ingest_field};
}

}  // namespace healthtwin::mqtt
