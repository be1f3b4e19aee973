#include "actors/models/device_health.hpp"

#include <algorithm>

#include "actors/models/state_codec.hpp"

namespace healthtwin::models {

namespace {

constexpr uint8_t state_version = 2;  // 1: without the clock drift state
constexpr condition_timing immediate{{0, 0, 0, 0}, 0};
constexpr double battery_critical = 5;
constexpr double battery_hysteresis = 5;
constexpr int64_t clock_sample_spacing_ms = 15'000;
constexpr int64_t clock_window_ms = 45'000;

finding device_finding(alert_kind k, std::string_view device, double value) {
  finding f;
  f.kind = k;
  f.subject = metric::battery;
  f.value = value;
  f.device = device;
  return f;
}

void report(alert_condition& c, priority target, int64_t t, finding f, std::vector<finding>& out) {
  if (auto ch = c.evaluate(target, t, immediate)) {
    f.level = ch->level;
    f.previous = ch->previous;
    f.what = change_of(ch->level, ch->previous);
    out.push_back(f);
  }
}

}  // namespace

// The node time from which `d` counts as offline: silent for longer than
// the offline time since its last data (or since `not_before_ms`, a grace).
int64_t device_health::offline_due_ms(const tracked& d, int64_t not_before_ms,
                                      const patient_settings& s) noexcept {
  return std::max(d.last_receive_ms, not_before_ms) + s.device_offline_after_ms + 1;
}

device_health::tracked* device_health::find(std::string_view name) noexcept {
  for (auto& d : devices_)
    if (d.name == name)
      return &d;
  return nullptr;
}

void device_health::set_devices(const std::vector<std::string>& names, int64_t now_ms) {
  std::vector<tracked> next;
  next.reserve(names.size());
  for (auto& n : names) {
    if (auto* d = find(n)) {
      next.push_back(std::move(*d));
    } else {
      tracked t;
      t.name = n;
      t.last_receive_ms = now_ms;
      next.push_back(std::move(t));
    }
  }
  devices_ = std::move(next);
}

void device_health::on_data(std::string_view device, int64_t receive_ms, int64_t newest_ms,
                            std::vector<finding>& out) {
  auto* d = find(device);
  if (!d)
    return;
  d->last_receive_ms = std::max(d->last_receive_ms, receive_ms);
  report(d->offline, priority::none, receive_ms, device_finding(alert_kind::device_offline, d->name, 0),
         out);
  if (newest_ms <= 0)
    return;
  auto& samples = d->clock_samples;
  auto& known = d->clock_samples_known;
  if (known > 0 && receive_ms - samples[known - 1].first < clock_sample_spacing_ms)
    return;
  if (known == samples.size()) {
    std::rotate(samples.begin(), samples.begin() + 1, samples.end());
    --known;
  }
  samples[known++] = {receive_ms, newest_ms};
  if (known < 4)
    return;
  auto receive_span = samples[known - 1].first - samples[0].first;
  auto data_span = samples[known - 1].second - samples[0].second;
  auto gap = data_span > receive_span ? data_span - receive_span : receive_span - data_span;
  if (receive_span < clock_window_ms || gap > receive_span / 10 + clock_sample_spacing_ms)
    return;  // too short to tell, or not live (a backfill): no verdict
  auto estimate = samples[0].first - samples[0].second;
  for (uint8_t i = 1; i < known; ++i)
    estimate = std::min(estimate, samples[i].first - samples[i].second);
  auto off = estimate < 0 ? -estimate : estimate;
  auto held = d->clock_condition.level() == priority::low && off > clock_drift_ms / 2;
  auto target = off > clock_drift_ms || held ? priority::low : priority::none;
  // The value: how far the clock is off, in s (positive: behind the node's).
  report(d->clock_condition, target, receive_ms,
         device_finding(alert_kind::clock_drift, d->name, static_cast<double>(estimate) / 1000.0), out);
}

void device_health::on_battery(std::string_view device, double percent, int64_t t,
                               const patient_settings& s, std::vector<finding>& out) {
  auto* d = find(device);
  if (!d)
    return;
  d->battery = percent;
  auto current = d->battery_condition.level();
  auto level_at = [&](double margin) {
    if (percent <= battery_critical + margin)
      return priority::medium;
    if (percent <= s.battery_low_percent + margin)
      return priority::low;
    return priority::none;
  };
  auto target = level_at(0);
  if (target < current)
    target = std::max(target, std::min(current, level_at(battery_hysteresis)));
  report(d->battery_condition, target, t, device_finding(alert_kind::battery_low, d->name, percent),
         out);
}

void device_health::tick(int64_t now_ms, int64_t not_before_ms, const patient_settings& s,
                         std::vector<finding>& out) {
  for (auto& d : devices_) {
    bool offline = now_ms >= offline_due_ms(d, not_before_ms, s);
    report(d.offline, offline ? priority::medium : priority::none, now_ms,
           device_finding(alert_kind::device_offline, d.name,
                          static_cast<double>(now_ms - d.last_receive_ms) / 1000.0),
           out);
  }
}

int64_t device_health::next_offline_ms(int64_t not_before_ms,
                                       const patient_settings& s) const noexcept {
  int64_t next = 0;
  for (auto& d : devices_) {
    if (d.offline.level() != priority::none)
      continue;
    auto due = offline_due_ms(d, not_before_ms, s);
    next = next == 0 ? due : std::min(next, due);
  }
  return next;
}

void device_health::reset(alert_kind k, std::string_view device) noexcept {
  auto* d = find(device);
  if (!d)
    return;
  if (k == alert_kind::device_offline)
    d->offline.reset(priority::none);
  else if (k == alert_kind::battery_low)
    d->battery_condition.reset(priority::none);
  else if (k == alert_kind::clock_drift)
    d->clock_condition.reset(priority::none);
}

std::string device_health::encode() const {
  state_writer w;
  w.put(state_version);
  w.put(static_cast<uint32_t>(devices_.size()));
  for (auto& d : devices_) {
    w.put_string(d.name);
    w.put(d.last_receive_ms);
    w.put(d.battery);
    for (auto* c : {&d.offline, &d.battery_condition, &d.clock_condition}) {
      auto& s = c->save();
      w.put(static_cast<uint8_t>(s.active));
      for (auto v : s.at_least_since)
        w.put(v);
      w.put(s.easing_since);
    }
    w.put(d.clock_samples_known);
    for (auto& [receive, newest] : d.clock_samples) {
      w.put(receive);
      w.put(newest);
    }
  }
  return w.take();
}

bool device_health::decode(std::string_view bytes) {
  state_reader r{bytes};
  auto version = r.get<uint8_t>();
  if (version != state_version && version != 1)
    return false;
  auto n = r.get<uint32_t>();
  if (n > 1024)
    return false;
  std::vector<tracked> devices;
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    tracked d;
    d.name = r.get_string();
    d.last_receive_ms = r.get<int64_t>();
    d.battery = r.get<double>();
    std::vector<alert_condition*> conditions{&d.offline, &d.battery_condition};
    if (version >= 2)
      conditions.push_back(&d.clock_condition);
    for (auto* c : conditions) {
      alert_condition::state s;
      s.active = static_cast<priority>(std::min<uint8_t>(r.get<uint8_t>(), 3));
      for (auto& v : s.at_least_since)
        v = r.get<int64_t>();
      s.easing_since = r.get<int64_t>();
      c->restore(s);
    }
    if (version >= 2) {
      d.clock_samples_known = std::min<uint8_t>(r.get<uint8_t>(), static_cast<uint8_t>(d.clock_samples.size()));
      for (auto& [receive, newest] : d.clock_samples) {
        receive = r.get<int64_t>();
        newest = r.get<int64_t>();
      }
    }
    devices.push_back(std::move(d));
  }
  if (!r.ok() || !r.done())
    return false;
  devices_ = std::move(devices);
  return true;
}

}  // namespace healthtwin::models
