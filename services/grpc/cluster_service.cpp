#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/twin/twin.hpp"
#include "healthtwin/v1/cluster.grpc.pb.h"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using grpc::ServerContext;
using grpc::Status;

class cluster_service final : public v1::ClusterService::Service {
public:
  explicit cluster_service(service_env& env) : env_(env) {}

  Status GetNodeStatus(ServerContext* call, const v1::GetNodeStatusRequest*,
                       v1::NodeStatus* resp) override {
    // Answers while recovering too (ready = false): SREs watch recovery.
    service_env::call_guard guard{env_};
    rpc_call rc{"ClusterService/GetNodeStatus", std::nullopt, {}, false};
    auto st = env_.authenticate(call, rc);
    if (st.ok())
      st = env_.within_rate(*rc.who);
    if (st.ok())
      st = rc.allow({});
    if (st.ok())
      st = status(call, resp);
    return env_.audited(call, rc, std::move(st));
  }

private:
  Status status(ServerContext* call, v1::NodeStatus* resp) {
    resp->set_node(env_.settings.node_name);
    resp->set_ready(env_.ready());
    resp->set_shards(env_.settings.shards);
    resp->set_device_twins(env_.ctx.counters->devices.load());
    resp->set_patient_twins(env_.ctx.counters->patients.load());
    if (!env_.ready())
      return Status::OK;
    resp->set_readings_accepted(env_.ctx.sequencer->readings_accepted());
    resp->set_log_position(env_.ctx.sequencer->last_position());
    auto counts = env_.ask<actors::alert_counts>(env_.ctx.alert_hub, env_.timeout(call),
                                                 actors::alert_count_atom::value);
    if (!counts)
      return to_status(counts.error());
    resp->set_alerts_active_high(counts->high);
    resp->set_alerts_active_medium(counts->medium);
    resp->set_alerts_active_low(counts->low);
    return Status::OK;
  }

  service_env& env_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_cluster_service(service_env& env) {
  return std::make_unique<cluster_service>(env);
}

}  // namespace healthtwin::services
