// What a firmware rollout reads on this node and how it starts a device
// (rollout_manager.hpp): the registry, the patient's twin and open alerts,
// and the device's desired firmware set through the ingest sequencer like
// UpdateDesiredConfig.

#include <algorithm>

#include "actors/models/wall_clock.hpp"
#include "services/grpc/rollout_manager.hpp"
#include "services/grpc/service_env.hpp"

namespace healthtwin::services {

namespace {

// A vital measured within this window has a current source.
constexpr int64_t current_ms = 15 * 60'000;

class node_rollout_facts final : public rollout_facts {
public:
  explicit node_rollout_facts(service_env& env) : env_(env) {}

  caf::expected<std::optional<storage::device_record>> device(const std::string& name) override {
    return storage::registry{*env_.ctx.store}.get_device(name);
  }

  caf::expected<patient_care> care(const std::string& patient) override {
    auto timeout = env_.settings.call_timeout;
    auto view = env_.ask<actors::patient_view>(env_.shard_for(patient), timeout, actors::patient_view_atom::value,
                                               patient);
    if (!view)
      return view.error();
    auto alerts = env_.ask<std::vector<actors::alert_record>>(env_.ctx.alert_hub, timeout,
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

  caf::error target(const storage::device_record& d, const std::string& firmware) override {
    auto desired = d.desired;
    desired.firmware = firmware;
    actors::update_desired_config cmd{d.name, std::move(desired), d.desired.version};
    return env_.sequence_within(env_.settings.call_timeout, std::move(cmd)).error;
  }

  caf::expected<std::vector<std::string>> devices_of_type(const std::string& tenant,
                                                           models::device_type type) override {
    auto prefix = "tenants/" + tenant + "/devices/";
    std::vector<std::string> out;
    auto err = storage::registry{*env_.ctx.store}.for_each_device([&](const storage::device_record& d) {
      if (d.type == type && d.decommission_time_ms == 0 && d.name.starts_with(prefix))
        out.push_back(d.name);
    });
    if (err)
      return err;
    std::sort(out.begin(), out.end());
    return out;
  }

private:
  service_env& env_;
};

}  // namespace

std::unique_ptr<rollout_facts> make_node_rollout_facts(service_env& env) {
  return std::make_unique<node_rollout_facts>(env);
}

}  // namespace healthtwin::services
