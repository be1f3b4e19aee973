#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "actors/cluster/shard_map.hpp"

namespace healthtwin::cluster {

/// What this node knows of a member's health from its probes.
enum class member_state : uint8_t {
  unknown,  ///< not heard from yet
  up,       ///< answered the last probe (or probed us) within down_after
  down,     ///< its last probe failed, or silent for longer than down_after
  refused,  ///< answers, but places twins differently (shard count or hash)
};

struct member_health {
  member_state state = member_state::unknown;
  bool ready = false;       ///< it had replayed its log (serves calls)
  int64_t last_seen_ms = 0; ///< wall clock of its last answer; 0: never
  std::string error;        ///< why it is down or refused
  uint16_t api_port = 0;    ///< its public gRPC port, from its answers; 0: unknown
};

/// The cluster as this node sees it: the static shard map plus each
/// member's health, updated by the prober and by incoming peer hellos.
/// Thread-safe.
class membership {
public:
  membership(shard_map map, uint32_t self, std::chrono::milliseconds down_after);

  const shard_map& map() const noexcept { return map_; }
  uint32_t self() const noexcept { return self_; }
  const member& self_member() const noexcept { return map_.members()[self_]; }

  /// Member `m` answered a probe at `now_ms`, serving its public API on
  /// `api_port` of its peer host.
  void answered(uint32_t m, bool ready, int64_t now_ms, uint16_t api_port = 0);
  /// A probe of member `m` failed (unreachable, timeout).
  void failed(uint32_t m, std::string error);
  /// Member `m` places twins differently: never treated as up.
  void refused(uint32_t m, std::string why, int64_t now_ms);

  /// Every member's health as of `now_ms` (this node: up).
  std::vector<member_health> health(int64_t now_ms) const;

  /// host:port of member `m`'s public API (its peer host), once it answered;
  /// empty before.
  std::string api_address(uint32_t m) const;

private:
  shard_map map_;
  uint32_t self_;
  std::chrono::milliseconds down_after_;
  mutable std::mutex mtx_;
  std::vector<member_health> records_;
};

}  // namespace healthtwin::cluster
