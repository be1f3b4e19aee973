#include "services/mqtt/telemetry_bridge.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "actors/models/wall_clock.hpp"
#include "services/mqtt/telemetry.hpp"

namespace healthtwin::mqtt {

namespace {

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

bool retryable(grpc::StatusCode code) noexcept {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::UNIMPLEMENTED:
      return false;
    default:
      return true;
  }
}

telemetry_bridge::telemetry_bridge(settings s, ingest_fn ingest, dead_letter_fn dead_letter, wait_fn wait)
    : s_(std::move(s)), ingest_(std::move(ingest)), publish_dead_letter_(std::move(dead_letter)),
      wait_(std::move(wait)) {}

std::string telemetry_bridge::dead_letter_topic(std::string_view topic) const {
  constexpr std::string_view root = "healthtwin/";
  if (topic.starts_with(root)) {
    auto tenant = topic.substr(root.size(), topic.find('/', root.size()) - root.size());
    if (s_.tenants.contains(tenant))
      return fmt::format("healthtwin/{}/deadletter", tenant);
  }
  return "healthtwin/deadletter";
}

bool telemetry_bridge::wait_before_retry(int& attempt, std::string_view why) {
  auto backoff = std::min(s_.max_backoff, s_.first_backoff * (1 << std::min(attempt, 16)));
  if (attempt == 0 || attempt % 10 == 0)
    spdlog::warn("mqtt: a telemetry message waits for the node ({}); retrying every {} ms", why, backoff.count());
  ++attempt;
  ++stats_.retries;
  return wait_(backoff);
}

outcome telemetry_bridge::dead_letter(const delivery& m, const std::vector<problem>& problems) {
  nlohmann::json errors = nlohmann::json::array();
  for (const auto& p : problems)
    errors.push_back({{"field", p.field}, {"reason", p.reason}, {"description", p.description}});
  nlohmann::json body = {{"version", 1},
                         {"topic", std::string{m.topic}},
                         {"received_ms", models::wall_clock_ms()},
                         {"errors", std::move(errors)},
                         {"content_type", std::string{m.content_type}},
                         {"payload_base64", base64(m.payload)}};
  auto text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto topic = dead_letter_topic(m.topic);
  for (int attempt = 0; !publish_dead_letter_(topic, text);)
    if (!wait_before_retry(attempt, "the broker did not confirm a dead letter"))
      return outcome::abandoned;
  ++stats_.dead_lettered;
  return outcome::dead_lettered;
}

outcome telemetry_bridge::handle(const delivery& m) {
  payload_error why;
  auto topic = parse_topic(m.topic, s_.tenants, why);
  auto format = topic ? format_of(m.payload, m.content_type, why) : std::nullopt;
  auto payload = format ? decode_payload(m.payload, *format, why) : std::nullopt;
  if (!payload)
    return dead_letter(m, {{why.field, "INVALID_PAYLOAD", why.reason}});

  auto req = to_ingest_request(*topic, std::move(*payload), next_batch_++);
  const auto readings = static_cast<uint64_t>(req.devices(0).sequence_size());
  for (int attempt = 0;;) {
    v1::IngestResponse resp;
    auto st = ingest_(req, resp);
    if (!st.ok()) {
      if (!retryable(st.error_code()))
        return dead_letter(m, {{"payload", "INVALID_ARGUMENT", st.error_message()}});
      if (!wait_before_retry(attempt, fmt::format("status {}", static_cast<int>(st.error_code()))))
        return outcome::abandoned;
      continue;
    }
    std::vector<problem> refused;
    uint64_t duplicates = 0;
    bool unavailable = false;
    for (const auto& r : resp.rejections()) {
      if (r.reason() == v1::REJECTION_REASON_DUPLICATE)
        ++duplicates;
      else if (r.reason() == v1::REJECTION_REASON_UNAVAILABLE)
        unavailable = true;
      else
        refused.push_back({payload_field(r.field()), v1::RejectionReason_Name(r.reason()), r.description()});
    }
    if (unavailable) {  // resent whole: what was written meanwhile comes back DUPLICATE
      if (!wait_before_retry(attempt, "a cluster member was unreachable"))
        return outcome::abandoned;
      continue;
    }
    stats_.readings += resp.accepted();
    if (duplicates == readings)
      ++stats_.duplicates;
    if (!refused.empty())
      return dead_letter(m, refused);
    ++stats_.stored;
    return outcome::stored;
  }
}

}  // namespace healthtwin::mqtt
