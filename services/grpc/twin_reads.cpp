#include "services/grpc/twin_reads.hpp"

#include "actors/alerts/alert_hub.hpp"
#include "actors/shard/shard.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/rollout_manager.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

using grpc::Status;

namespace {

// Of a device's rollouts on several members: the one not ended, else the
// one that started it last.
v1::DeviceRollout* latest_rollout(std::vector<v1::DeviceRollout>& found) {
  v1::DeviceRollout* best = nullptr;
  auto rank = [](const v1::DeviceRollout& r) {
    bool open = r.status() == v1::ROLLOUT_STATUS_RUNNING || r.status() == v1::ROLLOUT_STATUS_PAUSED;
    return std::pair{open, r.device().has_start_time() ? to_ms(r.device().start_time()) : 0};
  };
  for (auto& r : found)
    if (!best || rank(r) > rank(*best))
      best = &r;
  return best;
}

}  // namespace

grpc::Status read_device_twin(service_env& env, std::chrono::milliseconds timeout,
                              const storage::device_record& rec, v1::DeviceTwin* out) {
  auto view = env.ask<actors::device_view>(env.shard_for(rec.name), timeout,
                                           actors::device_view_atom::value, rec.name);
  if (!view)
    return to_status(view.error());
  bool online = view->last_receive_time_ms != 0 &&
                service_env::now_ms() - view->last_receive_time_ms <=
                    env.settings.heartbeat_timeout.count();
  to_api(*view, rec, online, out);
  // The device's latest rollout: held here, or (a cluster) by the owner of
  // the rollout name's shard; a member that does not answer in time leaves
  // its rollouts out of this read, never the read itself.
  std::vector<v1::DeviceRollout> found;
  if (env.rollouts)
    if (auto r = env.rollouts->of_device(rec.name))
      found.push_back(std::move(*r));
  if (env.ctx.forwarding)
    for (auto& r : device_rollouts_elsewhere(env, rec.name, std::min(timeout, std::chrono::milliseconds(1000))))
      found.push_back(std::move(r));
  if (auto* latest = latest_rollout(found))
    *out->mutable_rollout() = std::move(*latest);
  return Status::OK;
}

grpc::Status read_patient_twin(service_env& env, std::chrono::milliseconds timeout,
                               const std::string& name, v1::PatientTwin* out) {
  auto view = env.ask<actors::patient_view>(env.shard_for(name), timeout,
                                            actors::patient_view_atom::value, name);
  if (!view)
    return to_status(view.error());
  auto alerts = env.ask<std::vector<actors::alert_record>>(
      env.ctx.alert_hub, timeout, actors::alert_list_atom::value, name);
  if (!alerts)
    return to_status(alerts.error());
  to_api(*view, *alerts, out);
  return Status::OK;
}

}  // namespace healthtwin::services
