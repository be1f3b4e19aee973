// ClusterService.ChangeMembers on the member that receives it (ADR 0014):
//  1. an up-to-date view: every member's state merged in;
//  2. every member of the old and the new list learns both lists;
//  3. the hand-offs actors/cluster/handoff_plan.hpp plans, one step at a
//     time, each step's result spread to every member at once;
//  4. the new list alone; members left out own nothing now.
// A step that fails stops the change; calling again completes it.

#include <algorithm>
#include <future>

#include <spdlog/spdlog.h>

#include "actors/cluster/handoff_plan.hpp"
#include "services/grpc/status_mapping.hpp"
#include "services/peer/cluster_peers.hpp"
#include "services/peer/owner_forwarding.hpp"
#include "services/peer/shard_handoff.hpp"

namespace healthtwin::services {

namespace {

grpc::Status retry(std::string why) {
  return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change, std::move(why),
                     std::chrono::milliseconds(1000));
}

}  // namespace

void shard_handoff::merge_every_state() {
  auto& members = *parts_.members;
  std::string error;
  for (auto m : parts_.forwarding->others()) {
    auto stub = parts_.forwarding->peer(m);
    if (!stub)
      continue;
    grpc::ClientContext cc;
    cc.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    internal::ClusterStateRecord theirs;
    if (!stub->GetClusterState(&cc, {}, &theirs).ok())
      continue;  // a member that owns shards and is down fails its step later
    auto state = state_from_record(theirs, error);
    if (error.empty() && members.state().incompatible(state).empty())
      merge_state(state, error);
    error.clear();
  }
}

grpc::Status shard_handoff::run_step(const cluster::handoff_step& step,
                                     v1::ChangeMembersResponse* resp) {
  auto& members = *parts_.members;
  internal::HandOffRequest hreq;
  hreq.set_to(step.to);
  for (auto s : step.shards)
    hreq.add_shards(s);
  internal::HandOffReport report;
  grpc::Status st;
  auto map = members.map();
  if (step.from == members.self_member().name) {
    st = hand_off(hreq, &report);
  } else if (auto stub = parts_.forwarding->peer(*map->find(step.from)); !stub) {
    st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "no channel");
  } else {
    grpc::ClientContext cc;
    cc.set_deadline(std::chrono::system_clock::now() + settings_.checkpoint_timeout +
                    settings_.stream_timeout);
    st = stub->HandOffShards(&cc, hreq, &report);
  }
  if (!st.ok())
    return retry("moving shards " + cluster::shard_list(step.shards) + " from " + step.from + " to " +
                 step.to + " failed: " + st.error_message() + "; " + std::to_string(resp->moves_size()) +
                 " shard(s) moved so far, retry to complete the change");
  // Every other member learns the new owners now rather than at its next
  // probe (calls for the shards meanwhile get UNAVAILABLE).
  std::string error;
  auto after = state_from_record(report.state(), error);
  if (error.empty())
    merge_state(after, error);
  auto now = members.state();
  map = members.map();
  std::vector<std::future<void>> pushes;
  for (auto m : parts_.forwarding->others()) {
    auto& name = map->members()[m].name;
    if (name == step.from || name == step.to)
      continue;
    pushes.push_back(std::async(std::launch::async, [this, m, &now] {
      push_state(m, now, std::chrono::seconds(2));
    }));
  }
  for (auto& p : pushes)
    p.get();
  resp->set_records(resp->records() + report.records());
  resp->set_bytes(resp->bytes() + report.bytes());
  for (int i = 0; i < report.shards_size(); ++i) {
    auto* mv = resp->add_moves();
    mv->set_shard(report.shards(i));
    mv->set_from(step.from);
    mv->set_to(step.to);
    mv->set_unavailable_ms(i < report.unavailable_ms_size() ? report.unavailable_ms(i) : 0);
    resp->set_max_unavailable_ms(std::max(resp->max_unavailable_ms(), mv->unavailable_ms()));
  }
  return grpc::Status::OK;
}

grpc::Status shard_handoff::change_members(const member_change& change,
                                           v1::ChangeMembersResponse* resp) {
  if (settings_.replicated)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the members' stores are replicated (--replication-factor): changing the members is not supported yet, "
            "as the replication groups would not follow (docs/cluster.md, Replication)"};
  std::unique_lock<std::mutex> one{change_mtx_, std::try_to_lock};
  if (!one.owns_lock())
    return grpc::Status(grpc::StatusCode::ABORTED, "a change of members runs on this member; retry");
  auto& members = *parts_.members;
  auto self = members.self_member().name;
  std::string error;
  merge_every_state();

  auto both = cluster::members_of_both(members.state().members(), change.target);
  members.update([&](cluster::cluster_state& s) { s.set_members(both); }, error);
  if (!error.empty())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot persist the member list: " + error);
  auto map = members.map();
  for (auto& m : both) {
    if (m.name == self)
      continue;
    auto st = push_state(*map->find(m.name), members.state(), std::chrono::seconds(10));
    if (!st.ok())
      return retry("member " + m.name + " did not take the new member list: " + st.error_message() +
                   "; nothing moved, retry");
  }

  resp->set_max_unavailable_ms(0);
  for (auto& step : cluster::plan_handoff(members.state(), change.target, change.shards_per_step))
    if (auto st = run_step(step, resp); !st.ok())
      return st;

  members.update([&](cluster::cluster_state& s) { s.set_members(change.target); }, error);
  if (!error.empty())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot persist the member list: " + error);
  map = members.map();
  for (auto& m : both)
    if (m.name != self)
      if (auto st = push_state(*map->find(m.name), members.state(), std::chrono::seconds(10)); !st.ok())
        spdlog::warn("change of members: {} did not take the final list ({}); it learns it from "
                     "its probes",
                     m.name, st.error_message());
  spdlog::info("change of members: {} shard(s) moved, {} records, longest unavailable {} ms",
               resp->moves_size(), resp->records(), resp->max_unavailable_ms());
  return grpc::Status::OK;
}

}  // namespace healthtwin::services
