#include "actors/cluster/membership.hpp"

#include <spdlog/spdlog.h>

namespace healthtwin::cluster {

membership::membership(shard_map map, uint32_t self, std::chrono::milliseconds down_after)
    : map_(std::move(map)), self_(self), down_after_(down_after), records_(map_.members().size()) {}

void membership::answered(uint32_t m, bool ready, int64_t now_ms, uint16_t api_port) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.state != member_state::up || (now_ms - r.last_seen_ms > down_after_.count()))
    spdlog::info("cluster: member {} is up", map_.members()[m].name);
  r.state = member_state::up;
  r.ready = ready;
  r.last_seen_ms = now_ms;
  r.error.clear();
  if (api_port != 0)
    r.api_port = api_port;
}

std::string membership::api_address(uint32_t m) const {
  std::lock_guard<std::mutex> g{mtx_};
  auto port = records_[m].api_port;
  if (port == 0)
    return {};
  auto& peer = map_.members()[m].address;
  return peer.substr(0, peer.rfind(':')) + ":" + std::to_string(port);
}

void membership::failed(uint32_t m, std::string error) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.state != member_state::down)
    spdlog::warn("cluster: member {} is down: {}", map_.members()[m].name, error);
  r.state = member_state::down;
  r.ready = false;
  r.error = std::move(error);
}

void membership::refused(uint32_t m, std::string why, int64_t now_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.state != member_state::refused)
    spdlog::error("cluster: member {} places twins differently: {}", map_.members()[m].name, why);
  r.state = member_state::refused;
  r.ready = false;
  r.last_seen_ms = now_ms;
  r.error = std::move(why);
}

std::vector<member_health> membership::health(int64_t now_ms) const {
  std::lock_guard<std::mutex> g{mtx_};
  std::vector<member_health> out;
  out.reserve(records_.size());
  for (uint32_t m = 0; m < records_.size(); ++m) {
    auto h = records_[m];
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
