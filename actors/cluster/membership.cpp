#include "actors/cluster/membership.hpp"

#include <spdlog/spdlog.h>

namespace healthtwin::cluster {

membership::membership(cluster_state state, member self, std::chrono::milliseconds down_after,
                       persist_fn persist)
    : shards_(state.shards()), self_member_(std::move(self)), down_after_(down_after),
      persist_(std::move(persist)), owned_(new std::atomic<bool>[state.shards()]) {
  for (uint32_t s = 0; s < shards_; ++s)
    owned_[s] = false;
  std::lock_guard<std::mutex> g{mtx_};
  known_ = state.members();
  auto it = std::find_if(known_.begin(), known_.end(),
                         [&](const member& m) { return m.name == self_member_.name; });
  if (it == known_.end()) {
    known_.push_back(self_member_);
    it = known_.end() - 1;
  }
  self_ = static_cast<uint32_t>(it - known_.begin());
  publish(std::move(state));
}

std::shared_ptr<const shard_map> membership::map() const {
  std::lock_guard<std::mutex> g{mtx_};
  return map_;
}

cluster_state membership::state() const {
  std::lock_guard<std::mutex> g{mtx_};
  return state_;
}

std::string membership::founding() const {
  std::lock_guard<std::mutex> g{mtx_};
  return state_.founding();
}

std::string membership::digest() const {
  std::lock_guard<std::mutex> g{mtx_};
  return digest_;
}

ownership_change membership::publish(cluster_state s) {
  std::vector<bool> listed(known_.size(), false);
  auto number = [&](const std::string& name) {
    for (uint32_t m = 0; m < known_.size(); ++m)
      if (known_[m].name == name)
        return m;
    known_.push_back({name, {}});  // an owner not in our list yet: learnt
    listed.push_back(false);
    return static_cast<uint32_t>(known_.size() - 1);
  };
  for (auto& m : s.members()) {
    auto i = number(m.name);
    listed[i] = true;
    if (!m.address.empty())
      known_[i].address = m.address;
  }
  std::vector<uint32_t> owners;
  owners.reserve(shards_);
  ownership_change out;
  for (uint32_t sh = 0; sh < shards_; ++sh) {
    owners.push_back(number(s.owner(sh).member));
    bool mine = owners.back() == self_;
    if (mine != owned_[sh].load())
      (mine ? out.gained : out.lost).push_back(sh);
  }
  if (records_.size() < known_.size())
    records_.resize(known_.size());
  out.changed = !(s == state_);
  state_ = std::move(s);
  digest_ = state_.digest();
  map_ = std::make_shared<const shard_map>(known_, std::move(owners), std::move(listed));
  for (auto sh : out.gained)
    owned_[sh].store(true, std::memory_order_release);
  for (auto sh : out.lost)
    owned_[sh].store(false, std::memory_order_release);
  return out;
}

ownership_change membership::update(const std::function<void(cluster_state&)>& change,
                                    std::string& error) {
  std::lock_guard<std::mutex> serial{change_mtx_};
  auto next = state();
  change(next);
  if (next == state())
    return {};
  if (before_gaining_) {
    std::vector<uint32_t> gained;
    for (uint32_t s = 0; s < shards_; ++s)
      if (next.owner(s).member == self_member_.name && !owned_[s].load())
        gained.push_back(s);
    if (!gained.empty())
      before_gaining_(gained);
  }
  if (persist_) {
    error = persist_(next);
    if (!error.empty())
      return {};
  }
  std::lock_guard<std::mutex> g{mtx_};
  return publish(std::move(next));
}

void membership::before_gaining(std::function<void(const std::vector<uint32_t>&)> fn) {
  std::lock_guard<std::mutex> serial{change_mtx_};
  before_gaining_ = std::move(fn);
}

ownership_change membership::merge(const cluster_state& other, std::string& error) {
  return update([&](cluster_state& s) { s.merge(other); }, error);
}

ownership_change membership::adopt(const cluster_state& other, std::string& error) {
  return update([&](cluster_state& s) { s = other; }, error);
}

void membership::answered(uint32_t m, bool ready, int64_t now_ms, uint16_t api_port, std::string via) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.state != member_state::up || (now_ms - r.last_seen_ms > down_after_.count()) || r.serving_address != via)
    spdlog::info("cluster: member {} is up{}", known_[m].name, via.empty() ? "" : " (served by a standby at " + via + ")");
  r.state = member_state::up;
  r.ready = ready;
  r.last_seen_ms = now_ms;
  r.error.clear();
  r.serving_address = std::move(via);
  if (api_port != 0)
    r.api_port = api_port;
}

std::string membership::api_address(uint32_t m) const {
  std::lock_guard<std::mutex> g{mtx_};
  auto port = records_[m].api_port;
  if (port == 0)
    return {};
  auto& peer = serving(m);
  return peer.substr(0, peer.rfind(':')) + ":" + std::to_string(port);
}

std::string membership::peer_address(uint32_t m) const {
  std::lock_guard<std::mutex> g{mtx_};
  return m < known_.size() ? serving(m) : std::string{};
}

const std::string& membership::serving(uint32_t m) const {
  return records_[m].serving_address.empty() ? known_[m].address : records_[m].serving_address;
}

void membership::failed(uint32_t m, std::string error) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.state != member_state::down)
    spdlog::warn("cluster: member {} is down: {}", known_[m].name, error);
  r.state = member_state::down;
  r.ready = false;
  r.error = std::move(error);
}

void membership::refused(uint32_t m, std::string why, int64_t now_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  auto& r = records_[m];
  if (r.state != member_state::refused)
    spdlog::error("cluster: member {} places twins differently: {}", known_[m].name, why);
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
