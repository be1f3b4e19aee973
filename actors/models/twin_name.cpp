#include "actors/models/twin_name.hpp"

#include <xxhash.h>

namespace healthtwin::models {

namespace {

constexpr std::string_view tenants_prefix = "tenants/";

// Splits off the next '/'-separated segment of `rest`.
std::string_view next_segment(std::string_view& rest) noexcept {
  auto pos = rest.find('/');
  auto seg = rest.substr(0, pos);
  rest = pos == std::string_view::npos ? std::string_view{} : rest.substr(pos + 1);
  return seg;
}

}  // namespace

bool is_valid_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 63)
    return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(id.front()))
    return false;
  for (char c : id)
    if (!alnum(c) && c != '-')
      return false;
  return true;
}

std::optional<twin_name> parse_twin_name(std::string_view name) noexcept {
  if (name.substr(0, tenants_prefix.size()) != tenants_prefix)
    return std::nullopt;
  auto rest = name.substr(tenants_prefix.size());
  auto tenant = next_segment(rest);
  auto collection = next_segment(rest);
  auto id = rest;
  if (!is_valid_id(tenant) || !is_valid_id(id))
    return std::nullopt;
  if (collection == "devices")
    return twin_name{tenant, twin_kind::device, id};
  if (collection == "patients")
    return twin_name{tenant, twin_kind::patient, id};
  return std::nullopt;
}

std::optional<std::string_view> parse_tenant_name(std::string_view name) noexcept {
  if (name.substr(0, tenants_prefix.size()) != tenants_prefix)
    return std::nullopt;
  auto tenant = name.substr(tenants_prefix.size());
  if (!is_valid_id(tenant))
    return std::nullopt;
  return tenant;
}

std::optional<alert_name> parse_alert_name(std::string_view name) noexcept {
  auto pos = name.rfind("/alerts/");
  if (pos == std::string_view::npos)
    return std::nullopt;
  auto owner = name.substr(0, pos);
  auto id = name.substr(pos + 8);
  auto parsed = parse_twin_name(owner);
  if (!parsed || !is_valid_id(id))
    return std::nullopt;
  return alert_name{owner, parsed->tenant, id, parsed->kind};
}

std::string patient_name(std::string_view tenant, std::string_view id) {
  std::string s{tenants_prefix};
  s.append(tenant).append("/patients/").append(id);
  return s;
}

std::string device_name(std::string_view tenant, std::string_view id) {
  std::string s{tenants_prefix};
  s.append(tenant).append("/devices/").append(id);
  return s;
}

std::string_view tenant_of(std::string_view name) noexcept {
  if (name.substr(0, tenants_prefix.size()) != tenants_prefix)
    return {};
  auto rest = name.substr(tenants_prefix.size());
  return next_segment(rest);
}

uint64_t twin_hash(std::string_view name) noexcept {
  return XXH64(name.data(), name.size(), 0);
}

}  // namespace healthtwin::models
