#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace healthtwin::services {

/// The roles a token may carry (docs/security.md).
enum class role : uint8_t {
  device = 1,     ///< a medical device: sends its own readings, reads its own twin
  service = 2,    ///< a hospital backend: integrates registry, ingest, twins, alerts
  clinician = 4,  ///< reads patient data, handles alerts, sets clinical settings
  ops_admin = 8,  ///< manages patients and devices, erasure; no clinical data
  sre = 16,       ///< runs the cluster: node state only, no patient data
};
using role_set = uint8_t;

constexpr role_set operator|(role a, role b) {
  return static_cast<role_set>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}
constexpr role_set operator|(role_set a, role b) {
  return static_cast<role_set>(a | static_cast<uint8_t>(b));
}
constexpr bool has(role_set set, role r) { return (set & static_cast<uint8_t>(r)) != 0; }

std::optional<role> role_from_name(std::string_view name);
std::string_view role_name(role r);
/// Every role, in table order.
const std::vector<role>& all_roles();

/// An authenticated caller.
struct principal {
  std::string subject;  ///< `sub`: who, as written to the audit log
  std::string tenant;   ///< the tenant every role of the token is scoped to
  role_set roles = 0;
  std::string device;   ///< device id, for device tokens
  int64_t expires_s = 0;
};

/// What a call touches: the tenant of its resources (empty for node-wide
/// calls) and, where devices may call, the device ids it names.
struct call_scope {
  std::string_view tenant;
  std::vector<std::string_view> devices;
  /// The call names no resource at all (an ingest request whose device
  /// names all fail to parse: each reading is rejected INVALID_NAME and
  /// nothing is read or written), so only the caller's roles are checked.
  bool touches_nothing = false;
};

/// Which roles may call `rpc` ("Service/Method"); 0 for an unknown RPC.
role_set roles_allowed(std::string_view rpc);

/// True when the RPC is tenant-scoped (all but ClusterService).
bool tenant_scoped(std::string_view rpc);

/// Empty when `who` may call `rpc` on `scope`; otherwise why not (for the
/// PERMISSION_DENIED message; it names no resource of another tenant).
std::string check_access(const principal& who, std::string_view rpc, const call_scope& scope);

}  // namespace healthtwin::services
