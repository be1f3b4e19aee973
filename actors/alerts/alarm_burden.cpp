#include "actors/alerts/alarm_burden.hpp"

#include <algorithm>
#include <cmath>

namespace healthtwin::actors {

std::optional<int64_t> alarm_burden_group::ack_quantile(double p) const {
  if (ack_delays_ms.empty())
    return std::nullopt;
  auto sorted = ack_delays_ms;
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  auto i = std::clamp<size_t>(rank, 1, sorted.size()) - 1;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(i), sorted.end());
  return sorted[i];
}

alarm_burden_builder::alarm_burden_builder(alert_filter scope, int64_t start_ms, int64_t end_ms)
    : scope_(std::move(scope)), start_ms_(start_ms), end_ms_(end_ms) {
  scope_.states = 0;  // every state: an alert is counted whatever became of it
}

alarm_burden_group& alarm_burden_builder::group(const std::string& ward) {
  auto& g = wards_[ward];
  g.ward = ward;
  return g;
}

void alarm_burden_builder::add(const alert_event& e) {
  auto& a = e.alert;
  if (e.type == alert_event_type::raised) {
    if (e.event_time_ms < start_ms_ || e.event_time_ms >= end_ms_ || !scope_.matches(a))
      return;
    if (!alerts_.emplace(a.name, tracked{a.ward, e.event_time_ms}).second)
      return;  // the same raise twice (cannot happen in one log): counted once
    for (auto* g : {&total_, a.ward.empty() ? nullptr : &group(a.ward)}) {
      if (!g)
        continue;
      ++g->raised;
      ++g->by_kind_priority[{a.kind, a.level}];
    }
    if (!a.patient.empty()) {
      auto& p = patients_[a.patient];
      p.name = a.patient;
      p.ward = a.ward;
      ++p.raised;
    }
    if (!a.device.empty()) {
      auto& d = devices_[a.device];
      d.name = a.device;
      d.ward = a.ward;
      ++d.raised;
    }
    return;
  }
  auto it = alerts_.find(a.name);
  if (it == alerts_.end())
    return;  // raised before the window, or outside the scope
  auto& t = it->second;
  auto each_group = [&](auto f) {
    f(total_);
    if (!t.ward.empty())
      f(group(t.ward));
  };
  switch (e.type) {
    case alert_event_type::acknowledged:
      if (t.acknowledged || t.resolved)
        return;
      t.acknowledged = true;
      each_group([&](alarm_burden_group& g) {
        auto delay = std::max<int64_t>(0, e.event_time_ms - t.raised_ms);
        g.ack_delays_ms.push_back(delay);
        auto b = std::upper_bound(ack_bucket_edges_ms.begin(), ack_bucket_edges_ms.end(), delay - 1) -
                 ack_bucket_edges_ms.begin();
        ++g.ack_buckets[static_cast<size_t>(b)];
      });
      return;
    case alert_event_type::resolved:
      if (t.resolved)
        return;
      t.resolved = true;
      each_group([&](alarm_burden_group& g) {
        ++g.resolved;
        g.resolved_unacknowledged += !t.acknowledged;
      });
      return;
    case alert_event_type::escalated:
      if (t.escalated)
        return;
      t.escalated = true;
      each_group([](alarm_burden_group& g) { ++g.escalated; });
      return;
    default:
      return;
  }
}

namespace {

std::vector<noisy_source> noisiest(std::map<std::string, noisy_source>& all, size_t top) {
  std::vector<noisy_source> out;
  out.reserve(all.size());
  for (auto& [_, s] : all)
    out.push_back(std::move(s));
  std::stable_sort(out.begin(), out.end(),
                   [](const noisy_source& a, const noisy_source& b) { return a.raised > b.raised; });
  if (out.size() > top)
    out.resize(top);
  return out;
}

}  // namespace

alarm_burden_report alarm_burden_builder::finish(const std::map<std::string, uint32_t>& census, size_t top) && {
  alarm_burden_report r;
  r.start_ms = start_ms_;
  r.end_ms = end_ms_;
  r.total = std::move(total_);
  for (auto& [ward, n] : census) {
    if (!scope_.ward.empty() && ward != scope_.ward)
      continue;
    if (!ward.empty())
      group(ward).patients = n;
    r.total.patients += n;
  }
  for (auto& [_, g] : wards_)
    r.wards.push_back(std::move(g));
  r.noisiest_patients = noisiest(patients_, top);
  r.noisiest_devices = noisiest(devices_, top);
  return r;
}

}  // namespace healthtwin::actors
