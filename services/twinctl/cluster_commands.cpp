#include "services/twinctl/cluster_commands.hpp"

#include <cstdio>
#include <map>

#include <grpcpp/grpcpp.h>

#include "actors/cluster/shard_map.hpp"
#include "healthtwin/v1/cluster.grpc.pb.h"
#include "services/twinctl/api_commands.hpp"

namespace healthtwin::twinctl {

namespace {

const char* code_name(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    default: return "error";
  }
}

const char* state_name(v1::MemberState s) {
  switch (s) {
    case v1::MEMBER_STATE_UP: return "up";
    case v1::MEMBER_STATE_DOWN: return "down";
    case v1::MEMBER_STATE_REFUSED: return "refused";
    default: return "unknown";
  }
}

void print_status(const v1::ClusterStatus& s) {
  std::printf("cluster %s as member %s sees it: %u shards, state %s (member list version %llu)\n",
              s.cluster().c_str(), s.node().c_str(), s.shards(), s.state_digest().c_str(),
              static_cast<unsigned long long>(s.members_version()));
  for (auto& m : s.members())
    std::printf("  %-20s %-24s %-8s %s shards %4u%s%s\n", m.name().c_str(), m.address().c_str(),
                state_name(m.state()), m.ready() ? "ready   " : "        ", m.shards_owned(),
                m.removed() ? "  (removed)" : "", m.error().empty() ? "" : ("  " + m.error()).c_str());
}

}  // namespace

int print_cluster_status(const services::channel_settings& node) {
  auto stub = stub_to<v1::ClusterService>(node);
  if (!stub)
    return 2;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ClusterStatus out;
  auto st = stub->GetClusterStatus(&ctx, {}, &out);
  if (!st.ok()) {
    std::fprintf(stderr, "twinctl: GetClusterStatus: %s: %s\n", code_name(st.error_code()),
                 st.error_message().c_str());
    return 2;
  }
  print_status(out);
  return 0;
}

int change_members(const services::channel_settings& node, const std::vector<std::string>& members,
                   uint32_t shards_per_step) {
  v1::ChangeMembersRequest req;
  for (auto& item : members) {
    auto parsed = cluster::parse_members(item);
    if (!parsed.error.empty() || parsed.members.size() != 1) {
      std::fprintf(stderr, "twinctl: --member %s: %s\n", item.c_str(),
                   parsed.error.empty() ? "one NAME=HOST:PORT" : parsed.error.c_str());
      return 2;
    }
    auto* m = req.add_members();
    m->set_name(parsed.members[0].name);
    m->set_address(parsed.members[0].address);
  }
  req.set_shards_per_step(shards_per_step);
  auto stub = stub_to<v1::ClusterService>(node);
  if (!stub)
    return 2;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
  v1::ChangeMembersResponse out;
  auto st = stub->ChangeMembers(&ctx, req, &out);
  if (!st.ok())
    std::fprintf(stderr, "twinctl: ChangeMembers: %s: %s\n", code_name(st.error_code()),
                 st.error_message().c_str());
  if (!st.ok() && out.moves_size() == 0)
    return st.error_code() == grpc::StatusCode::UNAVAILABLE ? 1 : 2;
  std::map<std::pair<std::string, std::string>, int> moved;
  for (auto& m : out.moves())
    ++moved[{m.from(), m.to()}];
  for (auto& [who, n] : moved)
    std::printf("moved %d shard(s) from %s to %s\n", n, who.first.c_str(), who.second.c_str());
  std::printf("%d shard(s) moved, %llu records (%llu bytes); longest unavailable %u ms\n",
              out.moves_size(), static_cast<unsigned long long>(out.records()),
              static_cast<unsigned long long>(out.bytes()), out.max_unavailable_ms());
  if (out.has_status())
    print_status(out.status());
  if (!st.ok())
    return st.error_code() == grpc::StatusCode::UNAVAILABLE ? 1 : 2;
  return 0;
}

int backup_node(const services::channel_settings& node, const std::string& name, bool json) {
  auto stub = stub_to<v1::ClusterService>(node);
  if (!stub)
    return try_later;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  v1::BackupNodeRequest req;
  req.set_name(name);
  v1::Backup out;
  if (auto st = stub->BackupNode(&ctx, req, &out); !st.ok())
    return failed("BackupNode", st);
  if (json)
    print_json(out);
  else
    std::printf("backup %s of %s: %s (%u files, %llu bytes)\n", out.name().c_str(), out.node().c_str(),
                out.path().c_str(), out.files(), static_cast<unsigned long long>(out.size_bytes()));
  return done;
}

}  // namespace healthtwin::twinctl
