#include "actors/cluster/handoff_plan.hpp"

#include <algorithm>

namespace healthtwin::cluster {

std::vector<member> members_of_both(const std::vector<member>& current,
                                    const std::vector<member>& target) {
  auto both = current;
  for (auto& m : target) {
    auto it = std::find_if(both.begin(), both.end(), [&](auto& x) { return x.name == m.name; });
    if (it == both.end())
      both.push_back(m);
    else
      it->address = m.address;
  }
  return both;
}

std::vector<handoff_step> plan_handoff(const cluster_state& before, const std::vector<member>& target,
                                       uint32_t per_step) {
  auto placement = cluster_state::placement(target, before.shards());
  std::vector<handoff_step> steps;
  for (uint32_t s = 0; s < before.shards(); ++s) {
    auto& from = before.owner(s).member;
    if (from == placement[s])
      continue;
    auto it = std::find_if(steps.begin(), steps.end(), [&](auto& x) {
      return x.from == from && x.to == placement[s] && x.shards.size() < per_step;
    });
    if (it == steps.end())
      it = steps.insert(steps.end(), {from, placement[s], {}});
    it->shards.push_back(s);
  }
  return steps;
}

std::string shard_list(const std::vector<uint32_t>& shards) {
  std::string out;
  for (auto s : shards)
    out += (out.empty() ? "" : ",") + std::to_string(s);
  return out;
}

}  // namespace healthtwin::cluster
