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

/// Where a call is answered when the node is one of several members
/// (docs/cluster.md).
enum class cluster_route : uint8_t {
  owner,         ///< by the member owning the shard of what it names (forwarded there; ingest: device by device)
  every_member,  ///< gathered from every member (lists, alert streams)
  this_member,   ///< by the member asked: its own state, or it coordinates the cluster
  single_node,   ///< not served by a member of several (it would split twins): FAILED_PRECONDITION
};

/// One row per RPC the node serves: who may call it, whether its resources
/// belong to a tenant, where a cluster answers it. The access check,
/// admission and forwarding all read this one table; the audit log names
/// the call by `rpc`; docs/security.md shows it and
/// tests/unit/services/grpc/access_policy_test.cpp fails when a method of
/// the API has no row or two.
struct rpc_row {
  std::string_view rpc;  ///< "Service/Method" (healthtwin.v1 without the package)
  role_set roles;        ///< 0: no token needed (health checking, reflection: no data)
  bool tenant_scoped;    ///< the caller's tenant must own what it names
  cluster_route in_cluster;
};

/// Every row, in the order of the API.
const std::vector<rpc_row>& rpc_table();
/// The row of `rpc`; nullptr for an RPC the node does not know.
const rpc_row* find_rpc(std::string_view rpc);

/// Which roles may call `rpc` ("Service/Method"); 0 for an unknown RPC.
role_set roles_allowed(std::string_view rpc);

/// True when the RPC is tenant-scoped (all but ClusterService).
bool tenant_scoped(std::string_view rpc);

/// Empty when `who` may call `rpc` on `scope`; otherwise why not (for the
/// PERMISSION_DENIED message; it names no resource of another tenant).
std::string check_access(const principal& who, std::string_view rpc, const call_scope& scope);
/// The same with the RPC's row already found (`row` = find_rpc(rpc)).
std::string check_access(const principal& who, const rpc_row* row, std::string_view rpc,
                         const call_scope& scope);

}  // namespace healthtwin::services
