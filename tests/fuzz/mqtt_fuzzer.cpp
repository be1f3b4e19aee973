// libFuzzer target: what the MQTT bridge reads of a message it did not
// write (issue 22): the topic, the content type and the payload (readings,
// or a reported state). The input's first byte picks the content type, a
// newline ends the topic, the rest is the payload. Whatever it holds: no
// crash, every refusal names a field and stays short, and a payload taken
// has parallel arrays the ingest request can carry.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "services/mqtt/telemetry.hpp"

using namespace healthtwin::mqtt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  static const std::set<std::string, std::less<>> tenants{"st-mary"};
  static constexpr std::string_view types[] = {"", "application/json", "application/x-protobuf", "text/plain"};
  std::string_view content_type = types[data[0] % 4];
  std::string_view rest{reinterpret_cast<const char*>(data) + 1, size - 1};
  auto nl = rest.find('\n');
  std::string_view topic = nl == std::string_view::npos ? rest : rest.substr(0, nl);
  std::string_view payload = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);

  auto refused = [](const payload_error& why) {
    if (why.field.empty() || why.reason.empty() || why.reason.size() > 400)
      std::abort();
  };
  payload_error why;
  auto t = parse_topic(topic, tenants, why);
  if (!t)
    refused(why);
  auto format = format_of(payload, content_type, why);
  if (!format) {
    refused(why);
    return 0;
  }
  if (t && t->kind == topic_kind::reported) {
    if (!decode_config(payload, *format, why))
      refused(why);
    return 0;
  }
  auto p = decode_payload(payload, *format, why);
  if (!p) {
    refused(why);
    return 0;
  }
  auto n = p->sequence_size();
  if (n == 0 || static_cast<size_t>(n) > max_readings_per_message || p->time_ms_size() != n ||
      p->metric_size() != n || p->value_size() != n || (p->quality_size() != 0 && p->quality_size() != n))
    std::abort();
  if (t) {
    auto req = to_ingest_request(*t, std::move(*p), 1);
    if (req.devices_size() != 1 || req.devices(0).sequence_size() != n)
      std::abort();
  }
  return 0;
}
