#include "actors/index/twin_changes.hpp"

#include <algorithm>
#include <mutex>

namespace healthtwin::actors {

uint64_t twin_changes::subscribe(std::string name, listener fn) {
  std::unique_lock lock{mtx_};
  auto id = next_++;
  names_.emplace(id, name);
  by_name_[std::move(name)].emplace_back(id, std::move(fn));
  watched_.fetch_add(1, std::memory_order_relaxed);
  return id;
}

void twin_changes::unsubscribe(uint64_t id) {
  std::unique_lock lock{mtx_};
  auto n = names_.find(id);
  if (n == names_.end())
    return;
  auto it = by_name_.find(n->second);
  if (it != by_name_.end()) {
    std::erase_if(it->second, [id](auto& entry) { return entry.first == id; });
    if (it->second.empty())
      by_name_.erase(it);
  }
  names_.erase(n);
  watched_.fetch_sub(1, std::memory_order_relaxed);
}

void twin_changes::notify(std::string_view name) const {
  std::shared_lock lock{mtx_};
  auto it = by_name_.find(name);
  if (it == by_name_.end())
    return;
  for (auto& [_, fn] : it->second)
    fn();
}

}  // namespace healthtwin::actors
