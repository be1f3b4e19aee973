// What a firmware rollout reads and how it starts a device
// (rollout_manager.hpp): the registry, the patient's twin and open alerts,
// and the device's desired firmware set through the ingest sequencer like
// UpdateDesiredConfig — on this node for the twins it owns, and in a cluster
// at their owners (PeerService.RolloutFacts and TargetFirmware, one call
// per member for a batch). Both peer calls are answered here too.

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "actors/models/wall_clock.hpp"
#include "services/grpc/rollout_manager.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

namespace {

// A vital measured within this window has a current source.
constexpr int64_t current_ms = 15 * 60'000;
constexpr int max_asked = static_cast<int>(rollout_manager::max_devices);

caf::expected<patient_care> care_here(service_env& env, const std::string& patient) {
  auto timeout = env.settings.call_timeout;
  auto view = env.ask<actors::patient_view>(env.shard_for(patient), timeout, actors::patient_view_atom::value,
                                            patient);
  if (!view)
    return view.error();
  auto alerts = env.ask<std::vector<actors::alert_record>>(env.ctx.alert_hub, timeout,
                                                            actors::alert_list_atom::value, patient);
  if (!alerts)
    return alerts.error();
  patient_care out;
  out.open_alert = std::any_of(alerts->begin(), alerts->end(), [](auto& a) {
    return a.state != actors::alert_state::resolved && a.level >= models::priority::medium;
  });
  auto since = models::wall_clock_ms() - current_ms;
  for (auto& v : view->vitals)
    if (v.time_ms >= since && !v.source_device.empty())
      out.current_sources.emplace_back(v.metric, v.source_device);
  return out;
}

caf::error target_here(service_env& env, const std::string& device, const storage::device_config& desired_now,
                       const std::string& firmware) {
  auto desired = desired_now;
  desired.firmware = firmware;
  actors::update_desired_config cmd{device, std::move(desired), desired_now.version};
  return env.sequence_within(env.settings.call_timeout, std::move(cmd)).error;
}

caf::error devices_of_type_here(service_env& env, const std::string& tenant, models::device_type type,
                                std::vector<std::string>& out) {
  auto prefix = "tenants/" + tenant + "/devices/";
  return storage::registry{*env.ctx.store}.for_each_device([&](const storage::device_record& d) {
    if (d.type == type && d.decommission_time_ms == 0 && d.name.starts_with(prefix) && !env.owned_elsewhere(d.name))
      out.push_back(d.name);
  });
}

class node_rollout_facts final : public rollout_facts {
public:
  explicit node_rollout_facts(service_env& env) : env_(env) {}

  grpc::Status target(const storage::device_record& d, const std::string& firmware) override {
    auto owner = remote_owner(d.name);
    if (!owner)
      return to_status(target_here(env_, d.name, d.desired, firmware), "device");
    internal::FirmwareTarget req;
    req.set_device(d.name);
    req.set_firmware(firmware);
    req.set_desired_version(d.desired.version);
    return call(*owner, [&](auto& stub, auto& cc) {
      internal::FirmwareTargetAck ack;
      return stub.TargetFirmware(&cc, req, &ack);
    });
  }

  grpc::Status devices_of_type(const std::string& tenant, models::device_type type,
                               std::vector<std::string>& out) override {
    if (auto err = devices_of_type_here(env_, tenant, type, out))
      return to_status(err);
    if (env_.ctx.forwarding)
      for (auto m : env_.ctx.forwarding->others()) {
        internal::RolloutFactsRequest req;
        req.set_tenant(tenant);
        req.set_device_type(static_cast<uint32_t>(type));
        internal::RolloutFactsReply reply;
        if (auto st = ask(m, req, reply); !st.ok())
          return st;
        out.insert(out.end(), reply.devices_of_type().begin(), reply.devices_of_type().end());
      }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return grpc::Status::OK;
  }

  std::vector<device_fact> devices(const std::vector<std::string>& names) override {
    std::vector<device_fact> out(names.size());
    std::map<uint32_t, std::vector<size_t>> remote;  // member -> indexes
    storage::registry reg{*env_.ctx.store};
    for (size_t i = 0; i < names.size(); ++i) {
      if (auto owner = remote_owner(names[i])) {
        remote[*owner].push_back(i);
        continue;
      }
      auto rec = reg.get_device(names[i]);
      if (rec)
        out[i].record = std::move(*rec);
      else
        out[i].status = to_status(rec.error());
    }
    for (auto& [m, at] : remote)
      for (size_t from = 0; from < at.size(); from += max_asked) {
        internal::RolloutFactsRequest req;
        auto to = std::min(at.size(), from + max_asked);
        for (auto k = from; k < to; ++k)
          req.add_devices(names[at[k]]);
        internal::RolloutFactsReply reply;
        auto st = ask(m, req, reply);
        for (auto k = from; k < to; ++k)
          out[at[k]].status = st.ok() ? not_answered() : st;
        if (!st.ok())
          continue;
        std::map<std::string_view, size_t> index;
        for (auto k = from; k < to; ++k)
          index.emplace(names[at[k]], at[k]);
        for (auto& f : reply.devices()) {
          auto it = index.find(f.name());
          if (it == index.end() || !f.owned())
            continue;  // not asked; or moved meanwhile: read again at the next step
          auto& x = out[it->second];
          x.status = grpc::Status::OK;
          if (f.found()) {
            auto rec = storage::decode_device(f.record());
            if (rec)
              x.record = std::move(*rec);
            else
              x.status = grpc::Status(grpc::StatusCode::INTERNAL, "a device record from a member does not parse");
          }
        }
      }
    return out;
  }

  std::unordered_map<std::string, patient_care> cares(const std::vector<std::string>& patients) override {
    std::unordered_map<std::string, patient_care> out;
    std::map<uint32_t, internal::RolloutFactsRequest> remote;
    for (auto& p : patients) {
      if (auto owner = remote_owner(p)) {
        remote[*owner].add_patients(p);
      } else if (auto c = care_here(env_, p)) {
        out.emplace(p, std::move(*c));
      }
    }
    for (auto& [m, req] : remote) {
      internal::RolloutFactsReply reply;
      if (!ask(m, req, reply).ok())
        continue;  // their devices wait for the next step
      for (auto& c : reply.patients()) {
        if (!c.owned() || c.metrics_size() != c.sources_size())
          continue;
        patient_care x;
        x.open_alert = c.open_alert();
        for (int i = 0; i < c.metrics_size(); ++i)
          if (auto metric = models::metric_from_number(c.metrics(i)))
            x.current_sources.emplace_back(*metric, c.sources(i));
        out.emplace(c.patient(), std::move(x));
      }
    }
    return out;
  }

  grpc::Status rollouts_elsewhere(const std::vector<std::string>& devices,
                                  std::vector<v1::DeviceRollout>& out) override {
    return ask_rollouts_elsewhere(env_, devices, env_.settings.call_timeout, out);
  }

private:
  std::optional<uint32_t> remote_owner(const std::string& name) const {
    return env_.ctx.forwarding ? env_.ctx.forwarding->remote_owner(name) : std::nullopt;
  }

  static grpc::Status not_answered() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the member did not answer for it (a hand-off?)");
  }

  template <class Invoke>
  grpc::Status call(uint32_t m, Invoke&& invoke) {
    auto where = "member " + env_.ctx.forwarding->member_name(m);
    return env_.call_peer(m, where, std::chrono::system_clock::now() + env_.settings.call_timeout,
                          std::forward<Invoke>(invoke));
  }

  grpc::Status ask(uint32_t m, const internal::RolloutFactsRequest& req, internal::RolloutFactsReply& reply) {
    return call(m, [&](auto& stub, auto& cc) { return stub.RolloutFacts(&cc, req, &reply); });
  }

  service_env& env_;
};

// OK, or INVALID_ARGUMENT naming a name of the wrong form or too many.
grpc::Status check_names(const google::protobuf::RepeatedPtrField<std::string>& names, const char* field,
                         models::twin_kind kind) {
  if (names.size() > max_asked)
    return invalid_argument(field, fmt::format("at most {}", max_asked));
  for (int i = 0; i < names.size(); ++i) {
    auto parsed = models::parse_twin_name(names[i]);
    if (!parsed || parsed->kind != kind)
      return invalid_argument(fmt::format("{}[{}]", field, i), kind == models::twin_kind::device
                                                                   ? "must be tenants/{tenant}/devices/{device}"
                                                                   : "must be tenants/{tenant}/patients/{patient}");
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status rollout_facts::rollouts_elsewhere(const std::vector<std::string>&, std::vector<v1::DeviceRollout>&) {
  return grpc::Status::OK;
}

std::unique_ptr<rollout_facts> make_node_rollout_facts(service_env& env) {
  return std::make_unique<node_rollout_facts>(env);
}

grpc::Status ask_rollouts_elsewhere(service_env& env, const std::vector<std::string>& devices,
                                    std::chrono::milliseconds timeout, std::vector<v1::DeviceRollout>& out) {
  if (!env.ctx.forwarding || devices.empty())
    return grpc::Status::OK;
  for (auto m : env.ctx.forwarding->others())
    for (size_t from = 0; from < devices.size(); from += max_asked) {
      internal::RolloutFactsRequest req;
      for (auto k = from; k < std::min(devices.size(), from + max_asked); ++k)
        req.add_rollouts_of(devices[k]);
      internal::RolloutFactsReply reply;
      auto st = env.call_peer(m, "member " + env.ctx.forwarding->member_name(m),
                              std::chrono::system_clock::now() + timeout,
                              [&](auto& stub, auto& cc) { return stub.RolloutFacts(&cc, req, &reply); });
      if (!st.ok())
        return st;
      for (auto& r : *reply.mutable_rollouts())
        out.push_back(std::move(r));
    }
  return grpc::Status::OK;
}

std::vector<v1::DeviceRollout> device_rollouts_elsewhere(service_env& env, const std::string& device,
                                                         std::chrono::milliseconds timeout) {
  auto& cache = env.remote_rollouts;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> guard{cache.mtx};
    auto it = cache.entries.find(device);
    if (it != cache.entries.end() && now - it->second.at < cache.ttl)
      return it->second.rollouts;
  }
  std::vector<v1::DeviceRollout> found;
  (void)ask_rollouts_elsewhere(env, {device}, timeout, found);  // a member that did not answer: left out
  std::lock_guard<std::mutex> guard{cache.mtx};
  if (cache.entries.size() >= cache.max_entries)
    cache.entries.clear();
  cache.entries[device] = {now, found};
  return found;
}

grpc::Status rollout_facts_here(service_env& env, const internal::RolloutFactsRequest& req,
                                internal::RolloutFactsReply* out) {
  if (auto st = check_names(req.devices(), "devices", models::twin_kind::device); !st.ok())
    return st;
  if (auto st = check_names(req.patients(), "patients", models::twin_kind::patient); !st.ok())
    return st;
  if (auto st = check_names(req.rollouts_of(), "rollouts_of", models::twin_kind::device); !st.ok())
    return st;
  storage::registry reg{*env.ctx.store};
  for (auto& name : req.devices()) {
    auto* f = out->add_devices();
    f->set_name(name);
    if (env.owned_elsewhere(name))
      continue;
    auto rec = reg.get_device(name);
    if (!rec)
      return to_status(rec.error());
    f->set_owned(true);
    f->set_found(rec->has_value());
    if (*rec)
      f->set_record(storage::encode_device(**rec));
  }
  for (auto& name : req.patients()) {
    auto* c = out->add_patients();
    c->set_patient(name);
    if (env.owned_elsewhere(name))
      continue;
    auto care = care_here(env, name);
    if (!care)
      return to_status(care.error());
    c->set_owned(true);
    c->set_open_alert(care->open_alert);
    for (auto& [metric, source] : care->current_sources) {
      c->add_metrics(static_cast<uint32_t>(metric));
      c->add_sources(source);
    }
  }
  if (req.device_type() != 0) {
    auto type = models::device_type_from_number(req.device_type());
    if (!type || !models::is_valid_id(req.tenant()))
      return invalid_argument(type ? "tenant" : "device_type", type ? "not a tenant id" : "unknown device type");
    std::vector<std::string> names;
    if (auto err = devices_of_type_here(env, req.tenant(), *type, names))
      return to_status(err);
    for (auto& n : names)
      out->add_devices_of_type(std::move(n));
  }
  if (req.rollouts_of_size() > 0 && env.rollouts)
    for (auto& r : env.rollouts->of_devices({req.rollouts_of().begin(), req.rollouts_of().end()}))
      *out->add_rollouts() = std::move(r);
  return grpc::Status::OK;
}

grpc::Status target_firmware_here(service_env& env, const internal::FirmwareTarget& req) {
  auto parsed = models::parse_twin_name(req.device());
  if (!parsed || parsed->kind != models::twin_kind::device)
    return invalid_argument("device", "must be tenants/{tenant}/devices/{device}");
  if (req.firmware().empty() || req.firmware().size() > 64)
    return invalid_argument("firmware", "must be 1-64 characters");
  if (env.owned_elsewhere(req.device()))
    return owner_routing::not_owner_here("device");
  auto rec = storage::registry{*env.ctx.store}.get_device(req.device());
  if (!rec)
    return to_status(rec.error());
  if (!*rec)
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "device not found");
  auto desired = (*rec)->desired;
  desired.version = req.desired_version();  // the version the holder saw: a later update wins
  return to_status(target_here(env, req.device(), desired, req.firmware()), "device");
}

}  // namespace healthtwin::services
