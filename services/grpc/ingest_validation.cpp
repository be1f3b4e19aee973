#include "services/grpc/ingest_validation.hpp"

#include <cmath>

#include <fmt/format.h>

#include "actors/models/twin_name.hpp"

namespace healthtwin::services {

using actors::rejection_reason;

namespace {

bool same_lengths(const healthtwin::v1::DeviceReadings& d, uint32_t g,
                  std::vector<std::pair<std::string, std::string>>& violations) {
  auto n = d.sequence_size();
  auto check = [&](int size, std::string_view field) {
    if (size == n)
      return true;
    violations.emplace_back(fmt::format("devices[{}].{}", g, field),
                            fmt::format("has {} entries but sequence has {}", size, n));
    return false;
  };
  bool ok = check(d.time_ms_size(), "time_ms");
  ok = check(d.metric_size(), "metric") && ok;
  ok = check(d.value_size(), "value") && ok;
  if (d.quality_size() != 0)  // optional: empty means every reading unspecified
    ok = check(d.quality_size(), "quality") && ok;
  for (int k = 0; k < d.quality_size(); ++k)
    if (auto q = static_cast<int>(d.quality(k)); q < 0 || q >= models::reading_quality_count) {
      violations.emplace_back(fmt::format("devices[{}].quality[{}]", g, k),
                              fmt::format("unknown reading quality {}", q));
      return false;
    }
  return ok;
}

}  // namespace

validated_ingest validate_ingest(const healthtwin::v1::IngestRequest& request, int64_t now_ms,
                                 const ingest_limits& limits) {
  validated_ingest out;
  auto bytes = request.ByteSizeLong();
  if (bytes > limits.max_bytes)
    out.violations.emplace_back("request", fmt::format("{} bytes exceed the limit of {} bytes",
                                                       bytes, limits.max_bytes));
  if (request.devices_size() == 0)
    out.violations.emplace_back("devices", "must not be empty");
  size_t total = 0;
  for (int g = 0; g < request.devices_size(); ++g) {
    auto& d = request.devices(g);
    same_lengths(d, static_cast<uint32_t>(g), out.violations);
    total += static_cast<size_t>(d.sequence_size());
  }
  if (request.devices_size() > 0 && total == 0)
    out.violations.emplace_back("devices", "carries no readings");
  if (total > limits.max_readings)
    out.violations.emplace_back("devices", fmt::format("{} readings exceed the limit of {} per request",
                                                       total, limits.max_readings));
  if (!out.violations.empty())
    return out;

  out.groups.reserve(static_cast<size_t>(request.devices_size()));
  uint32_t index = 0;
  for (int gi = 0; gi < request.devices_size(); ++gi) {
    auto& d = request.devices(gi);
    auto g = static_cast<uint32_t>(gi);
    auto n = d.sequence_size();
    auto reject = [&](uint32_t i, int pos, rejection_reason why, std::string_view field,
                      std::string description) {
      out.rejections.push_back(actors::reading_rejection{
          i, actors::reading_field(g, field, static_cast<uint32_t>(pos)), why,
          std::move(description)});
    };
    auto name = models::parse_twin_name(d.device());
    if (!name || name->kind != models::twin_kind::device) {
      for (int k = 0; k < n; ++k, ++index)
        out.rejections.push_back(actors::reading_rejection{
            index, actors::reading_field(g, {}, 0) + ".device", rejection_reason::invalid_name,
            "must be tenants/{tenant}/devices/{device} with ids of [a-z0-9-]"});
      continue;
    }
    actors::ingest_group group;
    group.device = d.device();
    group.group = g;
    group.first_index = index;
    group.readings.reserve(static_cast<size_t>(n));
    for (int k = 0; k < n; ++k, ++index) {
      auto seq = d.sequence(k);
      auto t = d.time_ms(k);
      auto v = d.value(k);
      if (seq == 0 || seq > max_sequence) {
        // 2^53 at most: exact in JSON (MQTT, HTTP clients), and a device
        // that sends 2^64-1 (an unsigned -1) cannot wedge its own window.
        reject(index, k, rejection_reason::invalid_sequence, "sequence",
               seq == 0 ? "must be >= 1" : "must be at most 2^53 (9007199254740992)");
        continue;
      }
      auto m = models::metric_from_number(static_cast<uint32_t>(d.metric(k)));
      if (!m) {
        reject(index, k, rejection_reason::invalid_metric, "metric",
               fmt::format("unknown or unspecified metric {}", d.metric(k)));
        continue;
      }
      auto quality = models::reading_quality::unspecified;
      if (d.quality_size() != 0)  // checked with the lengths
        quality = static_cast<models::reading_quality>(d.quality(k));
      if (!std::isfinite(v)) {
        reject(index, k, rejection_reason::not_finite, "value", "must be a finite number");
        continue;
      }
      auto range = models::range_of(*m);
      // A reading that is no measurement carries any finite value (0, often).
      bool measured = quality == models::reading_quality::unspecified ||
                      quality == models::reading_quality::valid;
      if (measured && (v < range.min || v > range.max || (range.integral && v != std::floor(v)))) {
        reject(index, k, rejection_reason::out_of_range, "value",
               fmt::format("{:g} is outside the plausible range of {} [{:g}, {:g}] {}{}", v,
                           models::to_string(*m), range.min, range.max, models::unit_of(*m),
                           range.integral ? " (whole numbers)" : ""));
        continue;
      }
      if (t > now_ms + limits.max_clock_skew_ms) {
        reject(index, k, rejection_reason::future_timestamp, "time_ms",
               fmt::format("{} ms ahead of the node's clock (limit {} ms)", t - now_ms,
                           limits.max_clock_skew_ms));
        continue;
      }
      if (t < earliest_reading_ms) {
        reject(index, k, rejection_reason::invalid_timestamp, "time_ms",
               "before 2000-01-01: check the device clock");
        continue;
      }
      group.readings.push_back(actors::ingest_reading{seq, t, v, index, *m, false, quality});
    }
    out.readings += group.readings.size();
    if (!group.readings.empty())
      out.groups.push_back(std::move(group));
  }
  return out;
}

}  // namespace healthtwin::services
