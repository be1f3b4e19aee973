#include "services/grpc/rollout_manager.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_set>

#include <fmt/format.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/util/field_mask_util.h>
#include <spdlog/spdlog.h>

#include "actors/models/rollout_plan.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/errc.hpp"
#include "storage/meta_records.hpp"

namespace healthtwin::services {

using grpc::Status;
using grpc::StatusCode;

namespace {

bool active(const v1::Rollout& r) {
  return r.status() == v1::ROLLOUT_STATUS_RUNNING || r.status() == v1::ROLLOUT_STATUS_PAUSED;
}

bool finished(v1::OtaState s) {
  return s == v1::OTA_STATE_INSTALLED || s == v1::OTA_STATE_FAILED || s == v1::OTA_STATE_ROLLED_BACK;
}

// Stepped: running or paused, or cancelled while devices were installing
// (their outcome is still recorded; nothing starts).
bool stepped(const v1::Rollout& r) {
  return active(r) || (r.status() == v1::ROLLOUT_STATUS_CANCELLED && r.counts().downloading() > 0);
}

v1::OtaState to_api(models::ota_state s) {
  switch (s) {
    case models::ota_state::pending: return v1::OTA_STATE_PENDING;
    case models::ota_state::gated: return v1::OTA_STATE_GATED;
    case models::ota_state::downloading: return v1::OTA_STATE_DOWNLOADING;
    case models::ota_state::installed: return v1::OTA_STATE_INSTALLED;
    case models::ota_state::failed: return v1::OTA_STATE_FAILED;
    case models::ota_state::rolled_back: return v1::OTA_STATE_ROLLED_BACK;
  }
  return v1::OTA_STATE_UNSPECIFIED;
}

// The planner's view of a device (a gated one is pending and held back).
models::rollout_device planned(v1::OtaState s) {
  switch (s) {
    case v1::OTA_STATE_GATED: return {models::ota_state::pending, true};
    case v1::OTA_STATE_DOWNLOADING: return {models::ota_state::downloading, false};
    case v1::OTA_STATE_INSTALLED: return {models::ota_state::installed, false};
    case v1::OTA_STATE_FAILED: return {models::ota_state::failed, false};
    case v1::OTA_STATE_ROLLED_BACK: return {models::ota_state::rolled_back, false};
    default: return {models::ota_state::pending, false};
  }
}

models::rollout_spec spec_of(const v1::Rollout& r) {
  models::rollout_spec s;
  s.firmware = r.firmware();
  s.waves_percent.assign(r.waves_percent().begin(), r.waves_percent().end());
  s.max_failure_ratio = r.max_failure_ratio();
  s.min_finished = r.min_finished();
  s.accepted_failures = r.accepted_failures();
  return s;
}

std::string setting(const storage::device_record& d, const char* name) {
  auto it = d.reported.settings.find(name);
  return it == d.reported.settings.end() ? std::string{} : it->second;
}

// A device's state from what it reports (started: targeted); progress
// reported before the rollout started it is another update's.
models::ota_state observed(const models::rollout_spec& spec, const v1::RolloutDevice& d,
                           const storage::device_record& rec, std::string& why) {
  models::ota_report report{rec.reported.firmware, {}, {}};
  if (d.has_start_time() && rec.reported.update_time_ms >= to_ms(d.start_time())) {
    report.state = setting(rec, "ota.state");
    report.error = setting(rec, "ota.error");
  }
  return models::device_state(spec, d.has_start_time(), report, why);
}

void recount(v1::Rollout& r) {
  auto* c = r.mutable_counts();
  c->Clear();
  for (auto& d : r.devices()) {
    switch (d.state()) {
      case v1::OTA_STATE_GATED: c->set_gated(c->gated() + 1); break;
      case v1::OTA_STATE_DOWNLOADING: c->set_downloading(c->downloading() + 1); break;
      case v1::OTA_STATE_INSTALLED: c->set_installed(c->installed() + 1); break;
      case v1::OTA_STATE_FAILED: c->set_failed(c->failed() + 1); break;
      case v1::OTA_STATE_ROLLED_BACK: c->set_rolled_back(c->rolled_back() + 1); break;
      default: c->set_pending(c->pending() + 1); break;
    }
  }
}

// The devices of waves up to `wave` are the first wave_end(r, wave).
size_t wave_end(const v1::Rollout& r, size_t wave) {
  auto n = static_cast<double>(r.devices_size());
  return static_cast<size_t>(std::ceil(n * r.waves_percent(static_cast<int>(wave)) / 100.0));
}

Status moving() {
  return retry_later(StatusCode::UNAVAILABLE, refusal::shard_moving,
                     "the rollout's shard is moving to another member (a hand-off); retry",
                     std::chrono::milliseconds(500));
}

Status ended(const v1::Rollout& r) {
  return Status(StatusCode::FAILED_PRECONDITION,
                fmt::format("the rollout ended ({})", v1::RolloutStatus_Name(r.status())));
}

}  // namespace

// "tenants/{t}/rollouts/{id}" -> "{t}/{id}".
std::string rollout_manager::key_of(const std::string& name) {
  constexpr std::string_view head = "tenants/";
  auto rest = std::string_view{name}.substr(head.size());
  auto slash = rest.find('/');
  auto id = rest.substr(rest.find('/', slash + 1) + 1);
  return std::string{rest.substr(0, slash)}.append("/").append(id);
}

struct rollout_manager::gathered {
  std::vector<std::optional<storage::device_record>> records;  // per device
  std::vector<bool> unread;  // finished already, or the registry failed: left as it is
  std::unordered_map<std::string, patient_care> care;  // patients whose devices may start now
};

rollout_manager::rollout_manager(storage::store& db, rollout_facts& facts, std::chrono::milliseconds step,
                                 rollout_filter holds)
    : db_(db), facts_(facts), step_(step), holds_(std::move(holds)) {}

rollout_manager::~rollout_manager() {
  stop();
}

void rollout_manager::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void rollout_manager::run(const std::atomic<bool>* ready) {
  std::unique_lock<std::mutex> lock{mtx_};
  while (!stopping_) {
    if (!ready || ready->load()) {
      lock.unlock();
      step(models::wall_clock_ms());
      lock.lock();
    }
    wake_.wait_for(lock, ready && !ready->load() ? std::chrono::milliseconds(100) : step_,
                   [this] { return stopping_; });
  }
}

Status rollout_manager::keep(const v1::Rollout& r) {
  if (auto err = storage::put_meta_record(db_, record_kind, key_of(r.name()), r.SerializeAsString())) {
    spdlog::error("rollouts: writing a rollout record failed: {}", storage::describe(err));
    return to_status(err);
  }
  return Status::OK;
}

Status rollout_manager::find(const std::string& name, v1::Rollout*& out) {
  auto it = rollouts_.find(name);
  if (it == rollouts_.end())
    return moving_ && moving_(name) ? moving() : Status(StatusCode::NOT_FOUND, "rollout not found");
  out = &it->second;
  return Status::OK;
}

Status rollout_manager::create(const std::string& tenant, const std::string& name, const v1::Rollout& spec,
                               const std::string& by, int64_t now_ms, v1::Rollout* out) {
  v1::Rollout r;
  r.set_name(name);
  r.set_firmware(spec.firmware());
  *r.mutable_target() = spec.target();
  if (spec.waves_percent_size() == 0)
    for (uint32_t share : {10u, 50u, 100u})
      r.add_waves_percent(share);
  else
    *r.mutable_waves_percent() = spec.waves_percent();
  r.set_max_failure_ratio(spec.has_max_failure_ratio() ? spec.max_failure_ratio() : 0.1);
  r.set_min_finished(spec.has_min_finished() ? spec.min_finished() : 5);
  if (auto bad = models::check(spec_of(r))) {
    auto colon = bad->find(':');
    return invalid_argument("rollout." + bad->substr(0, colon), bad->substr(colon + 2));
  }
  // The devices, in rollout order: as listed, or a type's by name.
  auto& target = spec.target();
  bool by_type = target.device_type() != v1::DEVICE_TYPE_UNSPECIFIED;
  if (by_type == (target.devices_size() > 0))
    return invalid_argument("rollout.target", "name either device_type or devices");
  std::vector<std::string> devices;
  if (by_type) {
    auto type = models::device_type_from_number(static_cast<uint32_t>(target.device_type()));
    if (!type)
      return invalid_argument("rollout.target.device_type", "unknown device type");
    if (auto st = facts_.devices_of_type(tenant, *type, devices); !st.ok())
      return st;
  } else {
    if (static_cast<size_t>(target.devices_size()) > max_devices)
      return invalid_argument("rollout.target.devices", fmt::format("at most {} devices", max_devices));
    std::set<std::string> seen;
    for (int i = 0; i < target.devices_size(); ++i) {
      auto field = fmt::format("rollout.target.devices[{}]", i);
      auto& d = target.devices(i);
      auto parsed = models::parse_twin_name(d);
      if (!parsed || parsed->kind != models::twin_kind::device || parsed->tenant != tenant)
        return invalid_argument(field, "must be tenants/{tenant}/devices/{device} of the rollout's tenant");
      if (!seen.insert(d).second)
        return invalid_argument(field, "listed twice");
      devices.push_back(d);
    }
    auto found = facts_.devices(devices);
    for (size_t i = 0; i < found.size(); ++i) {
      if (!found[i].status.ok())
        return found[i].status;
      if (!found[i].record || found[i].record->decommission_time_ms != 0)
        return Status(StatusCode::FAILED_PRECONDITION, fmt::format("rollout.target.devices[{}]", i) +
                                                           ": the device is not registered or decommissioned");
    }
  }
  if (devices.empty())
    return Status(StatusCode::FAILED_PRECONDITION, "rollout.target: no device in service matches");
  // Rollouts other members hold (a cluster) take their devices too.
  std::vector<v1::DeviceRollout> elsewhere;
  if (auto st = facts_.rollouts_elsewhere(devices, elsewhere); !st.ok())
    return st;
  for (auto& x : elsewhere)
    if (x.status() == v1::ROLLOUT_STATUS_RUNNING || x.status() == v1::ROLLOUT_STATUS_PAUSED)
      return Status(StatusCode::FAILED_PRECONDITION,
                    fmt::format("{} is in {}, which has not ended: cancel it or wait", x.device().device(),
                                x.rollout()));
  if (devices.size() > max_devices)
    return Status(StatusCode::FAILED_PRECONDITION,
                  fmt::format("rollout.target: {} devices match, at most {} per rollout", devices.size(), max_devices));
  r.set_status(v1::ROLLOUT_STATUS_RUNNING);
  set_timestamp(r.mutable_create_time(), now_ms);
  set_timestamp(r.mutable_update_time(), now_ms);
  r.set_created_by(by);
  for (auto& d : devices) {
    auto* x = r.add_devices();
    x->set_device(d);
    x->set_state(v1::OTA_STATE_PENDING);
  }
  for (size_t wave = 0, i = 0; wave < static_cast<size_t>(r.waves_percent_size()); ++wave)
    for (auto end = wave_end(r, wave); i < end; ++i)
      r.mutable_devices(static_cast<int>(i))->set_wave(static_cast<uint32_t>(wave));
  recount(r);

  std::lock_guard<std::mutex> guard{mtx_};
  if (moving_ && moving_(name))
    return moving();
  if (rollouts_.count(name))
    return Status(StatusCode::ALREADY_EXISTS, "a rollout of this name exists");
  for (auto& d : devices) {
    auto it = device_index_.find(d);
    if (it != device_index_.end() && active(rollouts_.at(it->second)))
      return Status(StatusCode::FAILED_PRECONDITION,
                    fmt::format("{} is in {}, which has not ended: cancel it or wait", d, it->second));
  }
  if (rollouts_.size() >= max_kept) {
    const v1::Rollout* oldest = nullptr;
    for (auto& [_, x] : rollouts_)
      if (!active(x) && (!oldest || to_ms(x.create_time()) < to_ms(oldest->create_time())))
        oldest = &x;
    if (!oldest)
      return Status(StatusCode::RESOURCE_EXHAUSTED,
                    fmt::format("{} rollouts have not ended: cancel or finish some first", max_kept));
    if (auto err = storage::drop_meta_record(db_, record_kind, key_of(oldest->name())))
      return to_status(err);
    for (auto& d : oldest->devices())
      if (auto it = device_index_.find(d.device()); it != device_index_.end() && it->second == oldest->name())
        device_index_.erase(it);
    rollouts_.erase(oldest->name());
  }
  if (auto st = keep(r); !st.ok())
    return st;
  index(r);
  *out = r;
  rollouts_.emplace(name, std::move(r));
  wake_.notify_all();  // its first step now
  return Status::OK;
}

Status rollout_manager::get(const std::string& name, v1::Rollout* out) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = rollouts_.find(name);
  if (it == rollouts_.end())
    return moving_ && moving_(name) ? moving() : Status(StatusCode::NOT_FOUND, "rollout not found");
  *out = it->second;
  return Status::OK;
}

std::vector<v1::Rollout> rollout_manager::list(const std::string& tenant) const {
  auto prefix = "tenants/" + tenant + "/rollouts/";
  std::vector<v1::Rollout> out;
  std::lock_guard<std::mutex> guard{mtx_};
  // Every field but the devices (up to 10,000 each): not copied to be dropped.
  static const auto summary = [] {
    google::protobuf::FieldMask m;
    for (int i = 0; i < v1::Rollout::descriptor()->field_count(); ++i)
      if (auto* f = v1::Rollout::descriptor()->field(i); f->number() != v1::Rollout::kDevicesFieldNumber)
        m.add_paths(f->name());
    return m;
  }();
  for (auto it = rollouts_.lower_bound(prefix); it != rollouts_.end() && it->first.starts_with(prefix); ++it)
    google::protobuf::util::FieldMaskUtil::MergeMessageTo(it->second, summary, {}, &out.emplace_back());
  std::stable_sort(out.begin(), out.end(),
                   [](auto& a, auto& b) { return to_ms(a.create_time()) > to_ms(b.create_time()); });
  return out;
}

template <class Change>
Status rollout_manager::change(const std::string& name, int64_t now_ms, v1::Rollout* out, Change&& fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  v1::Rollout* r = nullptr;
  if (auto st = find(name, r); !st.ok())
    return st;
  auto before = *r;
  if (auto st = fn(*r); !st.ok())
    return st;
  set_timestamp(r->mutable_update_time(), now_ms);
  if (auto st = keep(*r); !st.ok()) {
    *r = std::move(before);  // as stored
    return st;
  }
  *out = *r;
  wake_.notify_all();
  return Status::OK;
}

Status rollout_manager::pause(const std::string& name, const std::string& by, int64_t now_ms, v1::Rollout* out) {
  return change(name, now_ms, out, [&](v1::Rollout& r) {
    if (!active(r))
      return ended(r);
    r.set_status(v1::ROLLOUT_STATUS_PAUSED);
    r.set_status_reason("paused by " + by);
    return Status::OK;
  });
}

Status rollout_manager::resume(const std::string& name, int64_t now_ms, v1::Rollout* out) {
  return change(name, now_ms, out, [&](v1::Rollout& r) {
    if (r.status() != v1::ROLLOUT_STATUS_PAUSED)
      return active(r) ? Status(StatusCode::FAILED_PRECONDITION, "the rollout is not paused") : ended(r);
    r.set_status(v1::ROLLOUT_STATUS_RUNNING);
    r.clear_status_reason();
    r.set_accepted_failures(r.counts().failed() + r.counts().rolled_back());
    return Status::OK;
  });
}

Status rollout_manager::cancel(const std::string& name, const std::string& by, int64_t now_ms, v1::Rollout* out) {
  return change(name, now_ms, out, [&](v1::Rollout& r) {
    if (!active(r))
      return ended(r);
    r.set_status(v1::ROLLOUT_STATUS_CANCELLED);
    r.set_status_reason("cancelled by " + by);
    return Status::OK;
  });
}

Status rollout_manager::override_gate(const std::string& name, const std::string& device, const std::string& by,
                                      const std::string& reason, int64_t now_ms, v1::Rollout* out) {
  return change(name, now_ms, out, [&](v1::Rollout& r) {
    if (!active(r))
      return ended(r);
    for (auto& d : *r.mutable_devices()) {
      if (d.device() != device)
        continue;
      if (d.has_start_time() || finished(d.state()))
        return Status(StatusCode::FAILED_PRECONDITION, "the device already started or finished");
      d.set_override_by(by);
      d.set_override_reason(reason);
      return Status::OK;
    }
    return Status(StatusCode::NOT_FOUND, "the device is not in this rollout");
  });
}

std::optional<v1::DeviceRollout> rollout_manager::of_device(const std::string& device) const {
  auto found = of_devices({device});
  if (found.empty())
    return std::nullopt;
  return std::move(found.front());
}

std::vector<v1::DeviceRollout> rollout_manager::of_devices(const std::vector<std::string>& devices) const {
  std::vector<v1::DeviceRollout> out;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& device : devices) {
    auto it = device_index_.find(device);
    if (it == device_index_.end())
      continue;
    auto& r = rollouts_.at(it->second);
    for (auto& d : r.devices()) {
      if (d.device() != device)
        continue;
      auto& x = out.emplace_back();
      x.set_rollout(r.name());
      x.set_firmware(r.firmware());
      x.set_status(r.status());
      *x.mutable_device() = d;
      break;
    }
  }
  return out;
}

rollout_manager::gathered rollout_manager::gather(const v1::Rollout& r) {
  gathered g;
  auto n = static_cast<size_t>(r.devices_size());
  g.records.resize(n);
  g.unread.assign(n, false);
  auto open_end = wave_end(r, r.wave());
  bool cancelled = r.status() == v1::ROLLOUT_STATUS_CANCELLED;
  std::vector<std::string> names;
  std::vector<size_t> at;
  for (size_t i = 0; i < n; ++i) {
    auto& d = r.devices(static_cast<int>(i));
    if (finished(d.state()) || (cancelled && !d.has_start_time()))
      g.unread[i] = true;
    else
      names.push_back(d.device()), at.push_back(i);
  }
  auto facts = facts_.devices(names);
  std::vector<std::string> patients;
  std::unordered_set<std::string> asked;
  for (size_t k = 0; k < at.size() && k < facts.size(); ++k) {
    auto i = at[k];
    if (!facts[k].status.ok()) {
      g.unread[i] = true;  // not read this step (its owner not reached)
      continue;
    }
    g.records[i] = std::move(facts[k].record);
    auto& x = g.records[i];
    if (x && !x->patient.empty() && !r.devices(static_cast<int>(i)).has_start_time() && i < open_end &&
        asked.insert(x->patient).second)
      patients.push_back(x->patient);
  }
  if (!patients.empty())
    g.care = facts_.cares(patients);
  return g;
}

void rollout_manager::apply(v1::Rollout& r, const gathered& g, int64_t now_ms, std::vector<size_t>& to_start) {
  if (r.status() == v1::ROLLOUT_STATUS_CANCELLED) {  // only the outcome of devices that were installing
    for (size_t i = 0; i < g.unread.size(); ++i) {
      auto& d = *r.mutable_devices(static_cast<int>(i));
      auto& rec = g.records[i];
      auto latest = device_index_.find(d.device());  // a later rollout took it: its reports are that one's
      if (g.unread[i] || finished(d.state()) || !rec || latest == device_index_.end() ||
          latest->second != r.name() || rec->desired.firmware != r.firmware())
        continue;  // (a later update, perhaps another member's rollout, took it)
      std::string why;
      d.set_state(to_api(observed(spec_of(r), d, *rec, why)));
      d.set_reason(why);
    }
    recount(r);
    return;
  }
  auto spec = spec_of(r);
  auto n = static_cast<size_t>(r.devices_size());
  std::vector<models::rollout_device> plan(n);
  std::vector<bool> may_start(n, false);
  std::vector<size_t> retarget;
  for (size_t i = 0; i < n; ++i) {
    auto& d = *r.mutable_devices(static_cast<int>(i));
    if (!g.unread[i] && !finished(d.state())) {
      auto& rec = g.records[i];
      if (!rec || rec->decommission_time_ms != 0) {
        d.set_state(v1::OTA_STATE_FAILED);
        d.set_reason(rec ? "the device was decommissioned" : "the device is no longer registered");
      } else {
        std::string why;
        auto s = observed(spec, d, *rec, why);
        d.set_state(to_api(s));
        d.set_reason(why);
        if (s == models::ota_state::downloading && rec->desired.firmware != r.firmware())
          retarget.push_back(i);  // started, but its desired firmware was not set (a crash between)
        if (s == models::ota_state::pending) {
          auto care = g.care.find(rec->patient);
          models::care_context c;
          c.assigned = !rec->patient.empty();
          c.clinician_override = !d.override_by().empty();
          if (care != g.care.end()) {
            c.open_alert = care->second.open_alert;
            for (auto& [metric, source] : care->second.current_sources)
              if (source == d.device())
                c.sole_source.push_back(metric);
          }
          may_start[i] = !c.assigned || c.clinician_override || care != g.care.end();
          if (auto held = models::safety_gate(c)) {
            d.set_state(v1::OTA_STATE_GATED);
            d.set_reason(*held);
          }
        }
      }
    }
    plan[i] = planned(d.state());
  }
  auto decision = models::plan_step(spec, plan, r.wave());
  r.set_wave(static_cast<uint32_t>(decision.wave));
  if (decision.complete) {
    r.set_status(v1::ROLLOUT_STATUS_COMPLETE);
    r.clear_status_reason();
  } else if (r.status() == v1::ROLLOUT_STATUS_RUNNING && decision.paused) {
    r.set_status(v1::ROLLOUT_STATUS_PAUSED);
    r.set_status_reason(decision.pause_reason);
  } else if (r.status() == v1::ROLLOUT_STATUS_RUNNING) {
    for (auto i : decision.to_start) {
      if (!may_start[i])
        continue;  // its gate is checked first, at the next step
      auto& d = *r.mutable_devices(static_cast<int>(i));
      set_timestamp(d.mutable_start_time(), now_ms);
      d.set_state(v1::OTA_STATE_DOWNLOADING);
      d.clear_reason();
      to_start.push_back(i);
    }
  }
  to_start.insert(to_start.end(), retarget.begin(), retarget.end());
  recount(r);
}

void rollout_manager::step(int64_t now_ms) {
  std::lock_guard<std::mutex> one_at_a_time{step_mtx_};
  std::vector<v1::Rollout> work;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [_, r] : rollouts_)
      if (stepped(r))
        work.push_back(r);
  }
  for (auto& copy : work) {
    auto g = gather(copy);  // reads the registry, twins and alerts: outside the lock
    std::vector<size_t> to_start;
    std::vector<storage::device_record> records;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      auto it = rollouts_.find(copy.name());
      if (it == rollouts_.end() || !stepped(it->second))
        continue;  // gone meanwhile
      auto& r = it->second;
      auto before = r.SerializeAsString();
      apply(r, g, now_ms, to_start);
      if (r.SerializeAsString() != before) {
        set_timestamp(r.mutable_update_time(), now_ms);
        if (!keep(r).ok())
          continue;  // kept as it was on disk at the next successful write; targets wait
      }
      for (auto i : to_start)
        records.push_back(*g.records[i]);
    }
    for (size_t k = 0; k < records.size(); ++k) {
      auto st = facts_.target(records[k], copy.firmware());
      if (st.ok())
        continue;
      std::lock_guard<std::mutex> guard{mtx_};
      auto it = rollouts_.find(copy.name());
      if (it == rollouts_.end())
        break;
      auto& d = *it->second.mutable_devices(static_cast<int>(to_start[k]));
      if (d.state() != v1::OTA_STATE_DOWNLOADING)
        continue;
      d.clear_start_time();
      d.set_state(v1::OTA_STATE_PENDING);
      d.set_reason("its desired firmware could not be set: " + st.error_message().substr(0, 200));
      recount(it->second);
      (void)keep(it->second);
    }
  }
}

}  // namespace healthtwin::services
