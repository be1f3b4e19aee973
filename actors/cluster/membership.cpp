#include "actors/cluster/membership.hpp"

#include <spdlog/spdlog.h>

namespace healthtwin::cluster {

std::string_view to_string(member_state s) noexcept {
  switch (s) {
    case member_state::unknown: return "unknown";
    case member_state::up: return "up";
    case member_state::down: return "down";
    case member_state::refused: return "refused";
  }
  return "unknown";
}

membership::membership(shard_map map, uint32_t self, std::chrono::milliseconds down_after)
    : map_(std::move(map)), self_(self), down_after_(down_after), records_(map_.members().size()) {}

void membership::answered(uint32_t m, bool ready, int64_t now_ms, uint16_t api_port) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.h.state != member_state::up || (now_ms - r.h.last_seen_ms > down_after_.count()))
    spdlog::info("cluster: member {} is up", map_.members()[m].name);
  r.h.state = member_state::up;
  r.h.ready = ready;
  r.h.last_seen_ms = now_ms;
  r.h.error.clear();
  if (api_port != 0)
    r.h.api_port = api_port;
}

std::string membership::api_address(uint32_t m) const {
  std::lock_guard<std::mutex> g{mtx_};
  auto port = records_[m].h.api_port;
  if (port == 0)
    return {};
  auto& peer = map_.members()[m].address;
  return peer.substr(0, peer.rfind(':')) + ":" + std::to_string(port);
}

void membership::failed(uint32_t m, std::string error, int64_t now_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.h.state != member_state::down)
    spdlog::warn("cluster: member {} is down: {}", map_.members()[m].name, error);
  r.h.state = member_state::down;
  r.h.ready = false;
  r.h.error = std::move(error);
  r.last_failure_ms = now_ms;
}

void membership::refused(uint32_t m, std::string why, int64_t now_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.h.state != member_state::refused)
    spdlog::error("cluster: member {} places twins differently: {}", map_.members()[m].name, why);
  r.h.state = member_state::refused;
  r.h.ready = false;
  r.h.last_seen_ms = now_ms;
  r.h.error = std::move(why);
}

std::vector<member_health> membership::health(int64_t now_ms) const {
  std::lock_guard<std::mutex> g{mtx_};
  std::vector<member_health> out;
  out.reserve(records_.size());
  for (uint32_t m = 0; m < records_.size(); ++m) {
    auto h = records_[m].h;
    if (m == self_) {
      h.state = member_state::up;
      h.last_seen_ms = now_ms;
    } else if (h.state == member_state::up && now_ms - h.last_seen_ms > down_after_.count()) {
      h.state = member_state::down;
      h.ready = false;
      h.error = "silent for " + std::to_string(now_ms - h.last_seen_ms) + " ms";
    }
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace healthtwin::cluster
