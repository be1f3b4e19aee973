#include "actors/index/twin_index.hpp"

#include <algorithm>

#include "actors/models/twin_name.hpp"

namespace healthtwin::actors {

template <class F>
void twin_index::update(const std::string& name, F f) {
  auto tenant = models::tenant_of(name);
  std::lock_guard<std::mutex> guard{mtx_};
  auto t = by_tenant_.find(std::string{tenant});
  if (t == by_tenant_.end())
    return;
  auto p = t->second.find(name);
  if (p != t->second.end())
    f(p->second);
}

void twin_index::set_registry(const std::string& name, std::string ward, std::string bed) {
  auto tenant = models::tenant_of(name);
  if (tenant.empty())
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  auto& s = by_tenant_[std::string{tenant}][name];
  s.ward = std::move(ward);
  s.bed = std::move(bed);
}

void twin_index::seed(const std::string& name, patient_summary summary) {
  auto tenant = models::tenant_of(name);
  if (tenant.empty())
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  auto& patients = by_tenant_[std::string{tenant}];
  if (patients.find(name) == patients.end())
    patients[name] = std::move(summary);
}

void twin_index::set_news2(const std::string& name, uint8_t total, bool complete,
                           models::news2_band band) {
  update(name, [&](patient_summary& s) {
    s.news2_known = true;
    s.news2 = total;
    s.news2_complete = complete;
    s.news2_band = band;
  });
}

void twin_index::set_alerts(const std::string& name, models::priority highest, uint32_t open) {
  update(name, [&](patient_summary& s) {
    s.alert_priority = highest;
    s.open_alerts = open;
  });
}

void twin_index::remove(const std::string& name) {
  auto tenant = models::tenant_of(name);
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = by_tenant_.find(std::string{tenant});
  if (i != by_tenant_.end())
    i->second.erase(name);
}

std::vector<std::pair<std::string, patient_summary>> twin_index::tenant(
    std::string_view tenant) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = by_tenant_.find(std::string{tenant});
  if (i == by_tenant_.end())
    return {};
  return {i->second.begin(), i->second.end()};
}

twin_index::selection twin_index::select(std::string_view tenant, const summary_test& keep,
                                         const summary_test& after, const summary_order& before,
                                         size_t limit) const {
  selection out;
  using entry = std::map<std::string, patient_summary, std::less<>>::const_iterator;
  // A max-heap of the best `limit` so far (its top: the worst of them).
  std::vector<entry> best;
  auto worse = [&](entry a, entry b) { return before(a->first, a->second, b->first, b->second); };
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = by_tenant_.find(std::string{tenant});
  if (i == by_tenant_.end())
    return out;
  for (auto it = i->second.begin(); it != i->second.end(); ++it) {
    if (!keep(it->first, it->second))
      continue;
    ++out.matched;
    if (limit == 0 || (after && !after(it->first, it->second)))
      continue;
    if (best.size() < limit) {
      best.push_back(it);
      std::push_heap(best.begin(), best.end(), worse);
    } else if (worse(it, best.front())) {
      std::pop_heap(best.begin(), best.end(), worse);
      best.back() = it;
      std::push_heap(best.begin(), best.end(), worse);
    }
  }
  std::sort_heap(best.begin(), best.end(), worse);
  out.first.reserve(best.size());
  for (auto e : best)
    out.first.emplace_back(e->first, e->second);
  return out;
}

void twin_index::remove_if(const std::function<bool(const std::string& name)>& drop) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& [_, patients] : by_tenant_)
    for (auto i = patients.begin(); i != patients.end();)
      i = drop(i->first) ? patients.erase(i) : std::next(i);
}

void twin_index::seed_once(const std::function<void()>& seed_all) {
  std::call_once(seeded_, [&] {
    seeded_flag_ = true;
    seed_all();
  });
}

}  // namespace healthtwin::actors
