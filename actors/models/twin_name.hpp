#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace healthtwin::models {

/// What a twin resource name names.
enum class twin_kind : uint8_t { device = 'd', patient = 'p' };

/// A parsed resource name `tenants/{tenant}/devices/{id}` or
/// `tenants/{tenant}/patients/{id}`. Views point into the parsed string.
struct twin_name {
  std::string_view tenant;
  twin_kind kind;
  std::string_view id;
};

/// True for an identifier segment: 1-63 characters of [a-z0-9-], starting
/// with a letter or digit.
bool is_valid_id(std::string_view id) noexcept;

/// Parses a twin resource name; nullopt when it is not exactly one.
std::optional<twin_name> parse_twin_name(std::string_view name) noexcept;

/// Parses `tenants/{tenant}`; returns the tenant id.
std::optional<std::string_view> parse_tenant_name(std::string_view name) noexcept;

/// A parsed alert name `{owner}/alerts/{id}`: the owner is the patient
/// (`tenants/{t}/patients/{p}`) or, for a device's own technical alerts
/// (device unassigned), the device (`tenants/{t}/devices/{d}`).
struct alert_name {
  std::string_view owner;
  std::string_view tenant;
  std::string_view id;
  twin_kind kind{};  ///< of the owner
};

std::optional<alert_name> parse_alert_name(std::string_view name) noexcept;

/// `tenants/{tenant}/patients/{id}` (no validation).
std::string patient_name(std::string_view tenant, std::string_view id);

/// `tenants/{tenant}/devices/{id}` (no validation).
std::string device_name(std::string_view tenant, std::string_view id);

/// The tenant part of a valid resource name ("" if malformed).
std::string_view tenant_of(std::string_view name) noexcept;

/// The named, stable hash of a resource name: XXH64 with seed 0 over the
/// name's bytes. Test vectors are pinned in tests; changing it moves every
/// twin to another shard and invalidates every data directory.
uint64_t twin_hash(std::string_view name) noexcept;

/// Name of the hash recorded in each data directory.
inline constexpr std::string_view twin_hash_name = "xxh64-seed0";

/// The virtual shard of a twin: twin_hash(name) mod shards. shards > 0.
inline uint32_t shard_of(std::string_view name, uint32_t shards) noexcept {
  return static_cast<uint32_t>(twin_hash(name) % shards);
}

}  // namespace healthtwin::models
