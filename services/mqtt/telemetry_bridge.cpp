#include "services/mqtt/telemetry_bridge.hpp"

#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "actors/models/wall_clock.hpp"
#include "services/mqtt/device_commands.hpp"
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

std::string_view grpc_code_name(grpc::StatusCode code) noexcept {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    default: return "REFUSED";
  }
}

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

void telemetry_bridge::serve_device_state(report_fn report, device_commands* commands) {
  report_ = std::move(report);
  commands_ = commands;
}

std::string telemetry_bridge::dead_letter_topic(std::string_view topic) const {
  constexpr std::string_view root = "healthtwin/";
  if (topic.starts_with(root)) {
    auto tenant = topic.substr(root.size(), topic.find('/', root.size()) - root.size());
    if (s_.tenants.contains(tenant))
      return fmt::format("healthtwin/{}/deadletter", tenant);
  }
  return "healthtwin/deadletter";
}

struct telemetry_bridge::pending {
  const delivery* m = nullptr;
  std::optional<v1::DeviceReadings> readings;  // none: refused before the node, or a state
  std::optional<v1::ReportDeviceStateRequest> state;  // a reported state
  std::vector<problem> problems;
  size_t duplicates = 0;
  size_t size() const { return readings ? static_cast<size_t>(readings->sequence_size()) : 0; }
};

bool telemetry_bridge::wait_before_retry(int& attempt, std::string_view why) {
  auto backoff = std::min(s_.max_backoff, s_.first_backoff * (1 << std::min(attempt, 16)));
  if (attempt == 0 || attempt % 10 == 0)
    spdlog::warn("mqtt: telemetry held ({}); retrying every {} ms", why, backoff.count());
  ++attempt;
  ++stats_.retries;
  return wait_(backoff);
}

bool telemetry_bridge::dead_letter(const delivery& m, const std::vector<problem>& problems) {
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
      return false;
  ++stats_.dead_lettered;
  return true;
}

bool telemetry_bridge::ingest(std::vector<pending>& batch, size_t first, size_t last) {
  v1::IngestRequest req;
  req.set_batch_id(next_batch_++);
  std::vector<std::pair<size_t, uint32_t>> starts;  // message, its first reading's index in the request
  uint32_t offset = 0;
  for (size_t k = first; k < last; ++k)
    if (batch[k].readings) {
      starts.emplace_back(k, offset);
      *req.add_devices() = *batch[k].readings;
      offset += static_cast<uint32_t>(batch[k].size());
    }
  for (int attempt = 0;;) {
    v1::IngestResponse resp;
    auto st = ingest_(req, resp);
    if (!st.ok()) {
      if (retryable(st.error_code())) {
        if (!wait_before_retry(attempt, fmt::format("status {}", static_cast<int>(st.error_code()))))
          return false;
        continue;
      }
      if (starts.size() == 1) {
        batch[starts[0].first].problems.push_back({"payload", "INVALID_ARGUMENT", st.error_message()});
        return true;
      }
      for (const auto& [k, _] : starts)  // which message was it: each alone
        if (!ingest(batch, k, k + 1))
          return false;
      return true;
    }
    auto unavailable = std::ranges::any_of(
        resp.rejections(), [](const auto& r) { return r.reason() == v1::REJECTION_REASON_UNAVAILABLE; });
    if (unavailable) {  // resent whole: what was written meanwhile comes back DUPLICATE
      if (!wait_before_retry(attempt, "a cluster member was unreachable"))
        return false;
      continue;
    }
    for (const auto& r : resp.rejections()) {
      auto it = std::upper_bound(starts.begin(), starts.end(), r.index(),
                                 [](uint32_t i, const auto& s) { return i < s.second; });
      if (it == starts.begin())
        continue;  // not an index of this request
      auto& m = batch[std::prev(it)->first];
      if (r.reason() == v1::REJECTION_REASON_DUPLICATE)
        ++m.duplicates;
      else
        m.problems.push_back({payload_field(r.field()), v1::RejectionReason_Name(r.reason()), r.description()});
    }
    stats_.readings += resp.accepted();
    return true;
  }
}

bool telemetry_bridge::report(pending& p) {
  for (int attempt = 0;;) {
    v1::Device device;
    auto st = report_(*p.state, device);
    if (st.ok()) {
      if (commands_) {
        commands_->seen(device.name());
        commands_->offer(device);  // a failed publication is retried by the poll
      }
      return true;
    }
    if (!retryable(st.error_code()) || st.error_code() == grpc::StatusCode::NOT_FOUND ||
        st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      p.problems.push_back({"payload", std::string{grpc_code_name(st.error_code())}, st.error_message()});
      return true;
    }
    if (!wait_before_retry(attempt, fmt::format("status {}", static_cast<int>(st.error_code()))))
      return false;
  }
}

bool telemetry_bridge::run(std::span<const delivery> batch, std::vector<bool>& dead_lettered) {
  std::vector<pending> p(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& m = batch[i];
    p[i].m = &m;
    payload_error why;
    auto topic = parse_topic(m.topic, s_.tenants, why);
    auto format = topic ? format_of(m.payload, m.content_type, why) : std::nullopt;
    if (format && topic->kind == topic_kind::reported) {
      auto config = report_ ? decode_config(m.payload, *format, why) : std::nullopt;
      if (!report_)
        why = {"topic", "this bridge does not take reported states"};
      if (!config) {
        p[i].problems.push_back({why.field, "INVALID_PAYLOAD", why.reason});
        continue;
      }
      p[i].state.emplace();
      p[i].state->set_device(topic->device_name());
      *p[i].state->mutable_reported() = std::move(*config);
      continue;
    }
    auto payload = format ? decode_payload(m.payload, *format, why) : std::nullopt;
    if (!payload) {
      p[i].problems.push_back({why.field, "INVALID_PAYLOAD", why.reason});
      continue;
    }
    if (commands_)
      commands_->seen(topic->device_name());
    auto req = to_ingest_request(*topic, std::move(*payload), 0);
    p[i].readings = std::move(*req.mutable_devices(0));
  }
  // Consecutive readings share a request up to the request limit; states
  // go one by one; all in their order.
  for (size_t i = 0; i < p.size();) {
    if (p[i].state) {
      if (!report(p[i]))
        return false;
      ++i;
      continue;
    }
    size_t j = i, n = 0;
    while (j < p.size() && !p[j].state && n + p[j].size() <= max_readings_per_message)
      n += p[j++].size();
    if (n > 0 && !ingest(p, i, j))
      return false;
    i = j;
  }
  dead_lettered.assign(p.size(), false);
  for (size_t i = 0; i < p.size(); ++i) {
    if (!p[i].problems.empty()) {
      if (!dead_letter(*p[i].m, p[i].problems))
        return false;
      dead_lettered[i] = true;
      continue;
    }
    if (p[i].state) {
      ++stats_.states;
      continue;
    }
    ++stats_.stored;
    if (p[i].duplicates == p[i].size())
      ++stats_.duplicates;
  }
  return true;
}

bool telemetry_bridge::handle(std::span<const delivery> batch) {
  std::vector<bool> dead;
  return run(batch, dead);
}

outcome telemetry_bridge::handle(const delivery& m) {
  std::vector<bool> dead;
  if (!run({&m, 1}, dead))
    return outcome::abandoned;
  return dead[0] ? outcome::dead_lettered : outcome::stored;
}

}  // namespace healthtwin::mqtt
