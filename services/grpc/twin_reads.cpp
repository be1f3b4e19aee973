#include "services/grpc/twin_reads.hpp"

#include "actors/alerts/alert_hub.hpp"
#include "actors/shard/shard.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/rollout_manager.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

using grpc::Status;

grpc::Status read_device_twin(service_env& env, const grpc::ServerContextBase* call,
                              const storage::device_record& rec, v1::DeviceTwin* out) {
  auto view = env.ask<actors::device_view>(env.shard_for(rec.name), env.timeout(call),
                                           actors::device_view_atom::value, rec.name);
  if (!view)
    return to_status(view.error());
  bool online = view->last_receive_time_ms != 0 &&
                service_env::now_ms() - view->last_receive_time_ms <=
                    env.settings.heartbeat_timeout.count();
  to_api(*view, rec, online, out);
  if (env.rollouts)
    if (auto r = env.rollouts->of_device(rec.name))
      *out->mutable_rollout() = std::move(*r);
  return Status::OK;
}

grpc::Status read_patient_twin(service_env& env, const grpc::ServerContextBase* call,
                               const std::string& name, v1::PatientTwin* out) {
  auto view = env.ask<actors::patient_view>(env.shard_for(name), env.timeout(call),
                                            actors::patient_view_atom::value, name);
  if (!view)
    return to_status(view.error());
  auto alerts = env.ask<std::vector<actors::alert_record>>(
      env.ctx.alert_hub, env.timeout(call), actors::alert_list_atom::value, name);
  if (!alerts)
    return to_status(alerts.error());
  to_api(*view, *alerts, out);
  return Status::OK;
}

}  // namespace healthtwin::services
