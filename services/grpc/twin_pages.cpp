#include "services/grpc/twin_pages.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "actors/models/twin_name.hpp"

namespace healthtwin::services {

namespace {

constexpr size_t max_token_bytes = 2'048;

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

}  // namespace

internal::PatientSummary to_peer(const summary_row& row) {
  auto& [name, s] = row;
  internal::PatientSummary p;
  p.set_name(name);
  p.set_ward(s.ward);
  p.set_bed(s.bed);
  p.set_news2_known(s.news2_known);
  p.set_news2(s.news2);
  p.set_news2_complete(s.news2_complete);
  p.set_news2_band(static_cast<uint32_t>(s.news2_band));
  p.set_alert_priority(static_cast<uint32_t>(s.alert_priority));
  p.set_open_alerts(s.open_alerts);
  return p;
}

summary_row from_peer(const internal::PatientSummary& p) {
  actors::patient_summary s;
  s.ward = p.ward();
  s.bed = p.bed();
  s.news2_known = p.news2_known();
  s.news2 = static_cast<uint8_t>(std::min<uint32_t>(p.news2(), 255));
  s.news2_complete = p.news2_complete();
  s.news2_band = static_cast<models::news2_band>(std::min<uint32_t>(p.news2_band(), 255));
  s.alert_priority = static_cast<models::priority>(std::min<uint32_t>(p.alert_priority(), 3));
  s.open_alerts = p.open_alerts();
  return {p.name(), std::move(s)};
}

std::string page_token(uint64_t query, const summary_row& last) {
  auto bytes = to_peer(last).SerializeAsString();
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes)
    fmt::format_to(std::back_inserter(hex), "{:02x}", c);
  return fmt::format("{:016x}.{}", query, hex);
}

std::optional<summary_row> parse_page_token(const std::string& token, uint64_t query) {
  auto head = fmt::format("{:016x}.", query);
  if (token.size() > max_token_bytes || !token.starts_with(head))
    return std::nullopt;
  auto bytes = from_hex(std::string_view{token}.substr(head.size()));
  internal::PatientSummary p;
  if (!bytes || !p.ParseFromString(*bytes))
    return std::nullopt;
  auto name = models::parse_twin_name(p.name());
  if (!name || name->kind != models::twin_kind::patient)
    return std::nullopt;
  return from_peer(p);
}

void drop_through(std::vector<summary_row>& sorted, const summary_row& cursor, const actors::twin_order& order) {
  auto first = std::upper_bound(sorted.begin(), sorted.end(), cursor,
                                [&](const summary_row& a, const summary_row& b) { return order.before(a, b); });
  sorted.erase(sorted.begin(), first);
}

}  // namespace healthtwin::services
