// Which rollouts this node holds (rollout_manager.hpp): those stored here
// that `holds` accepts, loaded at start, and those of shards a hand-off
// moves — let go of before their records are streamed away, taken up when
// shards arrive or a hand-off is abandoned (services/peer/shard_handoff).

#include <algorithm>

#include <spdlog/spdlog.h>

#include "services/grpc/api_convert.hpp"
#include "services/grpc/rollout_manager.hpp"
#include "storage/meta_records.hpp"

namespace healthtwin::services {

caf::expected<std::vector<v1::Rollout>> rollout_manager::load(const rollout_filter& in) {
  auto records = storage::load_meta_records(db_, record_kind);
  if (!records)
    return records.error();
  std::vector<v1::Rollout> loaded;
  for (auto& [key, bytes] : *records) {
    v1::Rollout r;
    if (!r.ParseFromString(bytes) || key_of(r.name()) != key || r.waves_percent_size() == 0) {
      spdlog::error("rollouts: a stored rollout record does not parse; it is left aside");
      continue;
    }
    if ((!holds_ || holds_(r.name())) && (!in || in(r.name())))
      loaded.push_back(std::move(r));
  }
  return loaded;
}

caf::error rollout_manager::start(const std::atomic<bool>* ready) {
  auto loaded = load({});
  if (!loaded)
    return loaded.error();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& r : *loaded) {
      auto name = r.name();
      rollouts_.insert_or_assign(std::move(name), std::move(r));
    }
    reindex();
  }
  thread_ = std::thread([this, ready] { run(ready); });
  return caf::none;
}

void rollout_manager::index(const v1::Rollout& r) {
  for (auto& d : r.devices())
    device_index_[d.device()] = r.name();
}

void rollout_manager::reindex() {
  std::vector<const v1::Rollout*> by_age;
  for (auto& [_, r] : rollouts_)
    by_age.push_back(&r);
  std::stable_sort(by_age.begin(), by_age.end(),
                   [](auto* a, auto* b) { return to_ms(a->create_time()) < to_ms(b->create_time()); });
  device_index_.clear();
  for (auto* r : by_age)
    index(*r);
}

void rollout_manager::let_go(const rollout_filter& in) {
  std::lock_guard<std::mutex> no_step{step_mtx_};  // a step in progress ends first
  std::lock_guard<std::mutex> guard{mtx_};
  moving_ = in;
  std::erase_if(rollouts_, [&](auto& entry) { return in(entry.first); });
  reindex();
}

caf::error rollout_manager::take_up(const rollout_filter& in) {
  auto loaded = load(in);
  std::lock_guard<std::mutex> guard{mtx_};
  moving_ = {};
  if (!loaded)
    return loaded.error();
  for (auto& r : *loaded) {
    auto name = r.name();
    rollouts_.insert_or_assign(std::move(name), std::move(r));
  }
  reindex();
  if (!loaded->empty())
    spdlog::info("rollouts: took up {} rollout(s) of shards this member now holds", loaded->size());
  wake_.notify_all();
  return caf::none;
}

void rollout_manager::gone(const rollout_filter& in) {
  std::lock_guard<std::mutex> guard{mtx_};
  moving_ = {};
  std::erase_if(rollouts_, [&](auto& entry) { return in(entry.first); });
  reindex();
}

}  // namespace healthtwin::services
