#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/cluster/membership.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/twin/twin.hpp"
#include "healthtwin/v1/cluster.grpc.pb.h"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/field_rules.hpp"
#include "services/grpc/replica_copy.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/errc.hpp"
#include "storage/store.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using grpc::ServerContext;
using grpc::Status;

class cluster_service final : public v1::ClusterService::Service {
public:
  explicit cluster_service(service_env& env) : env_(env) {
    if (env_.ctx.metrics)
      replica_metrics_ = std::make_unique<replica_metrics>(*env_.ctx.metrics);
  }

  Status GetNodeStatus(ServerContext* call, const v1::GetNodeStatusRequest*,
                       v1::NodeStatus* resp) override {
    // Answers while recovering too (ready = false): SREs watch recovery.
    service_env::call_guard guard{env_};
    rpc_call rc{"ClusterService/GetNodeStatus"};
    auto st = env_.authenticate(call, rc);
    if (st.ok())
      st = env_.within_rate(*rc.who);
    if (st.ok())
      st = rc.allow({});
    if (st.ok())
      st = status(call, resp);
    return env_.audited(call, rc, std::move(st));
  }

  Status GetClusterStatus(ServerContext* call, const v1::GetClusterStatusRequest*,
                          v1::ClusterStatus* resp) override {
    return env_.serve(call, "ClusterService/GetClusterStatus", [&](rpc_call& rc) -> Status {
      if (auto st = rc.allow({}); !st.ok())
        return st;
      cluster_status(resp);
      return Status::OK;
    });
  }

  Status ChangeMembers(ServerContext* call, const v1::ChangeMembersRequest* req,
                       v1::ChangeMembersResponse* resp) override {
    return env_.serve(call, "ClusterService/ChangeMembers", [&](rpc_call& rc) -> Status {
      rc.resource = "cluster";
      if (auto st = rc.allow({}); !st.ok())
        return st;
      if (!env_.handoff)
        return Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this node is not a cluster member (start it with --cluster-members)");
      member_change change;
      if (auto st = checked_change(*req, change); !st.ok())
        return st;
      auto st = env_.handoff->change_members(change, resp);
      cluster_status(resp->mutable_status());
      return st;
    });
  }

  Status BackupNode(ServerContext* call, const v1::BackupNodeRequest* req, v1::Backup* resp) override {
    return env_.serve(call, "ClusterService/BackupNode", [&](rpc_call& rc) -> Status {
      rc.resource = "cluster";
      if (auto st = rc.allow({}); !st.ok())
        return st;
      if (!models::is_valid_id(req->name()))
        return invalid_argument("name", "must be 1-63 characters of [a-z0-9-]");
      auto& root = env_.settings.backup_dir;
      if (root.empty())
        return Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this node takes no backups: start it with --backup-dir");
      std::unique_lock<std::mutex> one_at_a_time{backup_mtx_, std::try_to_lock};
      if (!one_at_a_time.owns_lock())
        return Status(grpc::StatusCode::ABORTED, "a backup or replica copy of this node is being made");
      auto path = root + "/" + req->name();
      std::error_code ec;
      if (std::filesystem::create_directory(root, ec); ec)
        return Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "the backup directory cannot be created: " + ec.message());
      if (std::filesystem::exists(path, ec))
        return Status(grpc::StatusCode::ALREADY_EXISTS, "a backup named " + req->name() + " exists");
      auto made = env_.ctx.store->checkpoint(path);
      if (!made) {
        std::filesystem::remove_all(path, ec);  // no half backup left behind
        spdlog::error("backup {} failed: {}", req->name(), storage::describe(made.error()));
        return Status(grpc::StatusCode::INTERNAL, "the backup failed: " + storage::describe(made.error()));
      }
      resp->set_name(req->name());
      resp->set_node(env_.ctx.members->self_member().name);
      resp->set_path(path);
      resp->set_size_bytes(made->first);
      resp->set_files(made->second);
      *resp->mutable_create_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(service_env::now_ms());
      spdlog::info("backup {}: {} files, {} bytes", req->name(), made->second, made->first);
      return Status::OK;
    });
  }

  Status ReadReplicaCopy(ServerContext* call, const v1::ReadReplicaCopyRequest* req,
                         grpc::ServerWriter<v1::ReplicaCopyChunk>* writer) override {
    return env_.serve(call, "ClusterService/ReadReplicaCopy", [&](rpc_call& rc) -> Status {
      rc.resource = "cluster";
      if (auto st = rc.allow({}); !st.ok())
        return st;
      std::map<std::string, uint64_t> holds;
      if (auto st = replica_holds(*req, holds); !st.ok())
        return st;
      if (env_.settings.backup_dir.empty())
        return Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this node makes no replica copies: start it with --backup-dir");
      std::unique_lock<std::mutex> one_at_a_time{backup_mtx_, std::try_to_lock};
      if (!one_at_a_time.owns_lock())
        return Status(grpc::StatusCode::ABORTED, "a backup or replica copy of this node is being made");
      replica_source src{*env_.ctx.store, env_.settings.backup_dir, env_.ctx.members->self_member().name,
                         env_.stopping, replica_metrics_.get()};
      return stream_replica_copy(src, holds, call, writer);
    });
  }

private:
  std::mutex backup_mtx_;  // one backup or replica copy at a time
  std::unique_ptr<replica_metrics> replica_metrics_;

  // The request's fields checked: unique member names, host:port
  // addresses, a step of 1..256 shards (16 when unset).
  static Status checked_change(const v1::ChangeMembersRequest& req, member_change& out) {
    std::vector<field_violation> bad;
    std::set<std::string> names;
    for (int i = 0; i < req.members_size(); ++i) {
      auto& m = req.members(i);
      auto field = "members[" + std::to_string(i) + "]";
      if (!valid_member_name(m.name()) || !names.insert(m.name()).second)
        bad.push_back({field + ".name", "must be a unique name of 1-253 characters of [a-z0-9.-]"});
      if (!valid_host_port(m.address()))
        bad.push_back({field + ".address", "must be host:port of the member's peer listener"});
      out.target.push_back({m.name(), m.address()});
    }
    if (out.target.empty())
      bad.push_back({"members", "the new member list is empty"});
    out.shards_per_step = req.shards_per_step() == 0 ? 16u : req.shards_per_step();
    if (out.shards_per_step > 256)
      bad.push_back({"shards_per_step", "must be 1..256"});
    return bad.empty() ? Status::OK : invalid_argument(bad);
  }

  void cluster_status(v1::ClusterStatus* resp) {
    auto& members = *env_.ctx.members;
    auto snapshot = members.map();
    auto& map = *snapshot;
    resp->set_cluster(env_.settings.cluster_name);
    resp->set_node(members.self_member().name);
    resp->set_shards(map.shards());
    resp->set_twin_hash(std::string{models::twin_hash_name});
    resp->set_placement_hash(std::string{cluster::shard_map::hash_name});
    auto health = members.health(service_env::now_ms());
    // A member learnt between the two reads is shown next time.
    health.resize(std::min(health.size(), map.members().size()));
    for (uint32_t m = 0; m < health.size(); ++m) {
      auto* out = resp->add_members();
      out->set_name(map.members()[m].name);
      out->set_address(map.members()[m].address);
      out->set_state(member_state(health[m].state));
      out->set_self(m == members.self());
      out->set_ready(m == members.self() ? env_.ready() : health[m].ready);
      if (health[m].last_seen_ms > 0)
        set_timestamp(out->mutable_last_seen_time(), health[m].last_seen_ms);
      out->set_error(health[m].error);
      out->set_shards_owned(map.owned_by(m));
      out->set_removed(!map.listed(m));
    }
    resp->mutable_shard_owners()->Assign(map.owners().begin(), map.owners().end());
    auto state = members.state();
    resp->set_state_digest(state.digest());
    resp->set_members_version(state.members_version());
    for (auto& o : state.owners())
      resp->add_shard_versions(o.version);
  }

  static v1::MemberState member_state(cluster::member_state s) {
    switch (s) {
      case cluster::member_state::up: return v1::MEMBER_STATE_UP;
      case cluster::member_state::down: return v1::MEMBER_STATE_DOWN;
      case cluster::member_state::refused: return v1::MEMBER_STATE_REFUSED;
      case cluster::member_state::unknown: break;
    }
    return v1::MEMBER_STATE_UNSPECIFIED;
  }

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
