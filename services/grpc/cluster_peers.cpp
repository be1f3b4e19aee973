#include "services/grpc/cluster_peers.hpp"

#include <algorithm>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>

#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "healthtwin/internal/peer.grpc.pb.h"
#include "services/grpc/client_channel.hpp"

namespace healthtwin::services {

namespace {

using internal::PeerHello;

PeerHello hello_of(const peer_settings& s, const cluster::membership& members, bool ready) {
  PeerHello h;
  h.set_cluster(s.cluster_name);
  h.set_node(members.self_member().name);
  h.set_shards(s.shards);
  h.set_twin_hash(std::string{models::twin_hash_name});
  h.set_placement_hash(std::string{cluster::shard_map::hash_name});
  for (auto& m : members.map().members())
    h.add_members(m.name);
  h.set_ready(ready);
  h.set_api_port(s.api_port);
  h.set_token_keys(s.token_keys);
  return h;
}

// Empty when `theirs` places twins as `mine` does; else the field that differs.
std::string mismatch(const PeerHello& mine, const PeerHello& theirs) {
  auto differs = [&](const char* field, const std::string& a, const std::string& b) {
    return std::string{field} + " differs (" + mine.node() + ": " + a + ", " + theirs.node() +
           ": " + b + ")";
  };
  if (theirs.cluster() != mine.cluster())
    return differs("cluster name", mine.cluster(), theirs.cluster());
  if (theirs.shards() != mine.shards())
    return differs("shard count", std::to_string(mine.shards()), std::to_string(theirs.shards()));
  if (theirs.twin_hash() != mine.twin_hash())
    return differs("twin hash", mine.twin_hash(), theirs.twin_hash());
  if (theirs.placement_hash() != mine.placement_hash())
    return differs("placement hash", mine.placement_hash(), theirs.placement_hash());
  // Forwarded calls carry the caller's token to the owner, which must
  // accept the same tokens.
  if (theirs.token_keys() != mine.token_keys())
    return differs("bearer-token keys", mine.token_keys().substr(0, 12),
                   theirs.token_keys().substr(0, 12));
  return {};
}

// A caller may speak for member `m` only if its certificate names it: the
// member's name or its address's host among the certificate's common name
// and subject alternative names (DNS and IP).
bool certificate_names(const grpc::AuthContext& auth, const cluster::member& m) {
  auto host = m.address.substr(0, m.address.rfind(':'));
  if (host.size() > 2 && host.front() == '[')
    host = host.substr(1, host.size() - 2);
  for (auto* property : {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME})
    for (auto& v : auth.FindPropertyValues(property)) {
      std::string_view name{v.data(), v.size()};
      if (name == m.name || name == host)
        return true;
    }
  return false;
}

class peer_service final : public internal::PeerService::Service {
public:
  peer_service(const peer_settings& s, cluster::membership& members, const std::atomic<bool>& ready,
               peer_handlers handlers)
      : settings_(s), members_(members), ready_(ready), handlers_(std::move(handlers)) {}

  grpc::Status ListPatientSummaries(grpc::ServerContext* call, const internal::SummaryQuery* req,
                                    internal::SummaryList* resp) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    return audited(*call, "ListPatientSummaries", "tenants/" + req->tenant(),
                   handlers_.summaries(*req, resp));
  }

  grpc::Status ApplyPatientParts(grpc::ServerContext* call, const internal::PatientParts* req,
                                 internal::PatientPartsAck* resp) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    // One patient's parts name it; several patients' name their tenant.
    std::string resource;
    for (auto& p : req->parts())
      if (resource.empty())
        resource = p.patient();
      else if (resource != p.patient())
        resource = "tenants/" + std::string{models::tenant_of(p.patient())};
    return audited(*call, "ApplyPatientParts", resource, handlers_.apply_patient_parts(*call, *req, resp));
  }

  grpc::Status LinkDevice(grpc::ServerContext* call, const internal::DeviceLink* req,
                          internal::DeviceLinkAck*) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    return audited(*call, "LinkDevice", req->patient(), handlers_.link_device(*call, *req));
  }

  grpc::Status ReleaseDevices(grpc::ServerContext* call, const internal::DeviceRelease* req,
                              internal::DeviceReleaseAck*) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    return audited(*call, "ReleaseDevices", req->patient(), handlers_.release_devices(*call, *req));
  }

  grpc::Status Hello(grpc::ServerContext* call, const PeerHello* req, PeerHello* resp) override {
    *resp = hello_of(settings_, members_, ready_.load());
    auto m = members_.map().find(req->node());
    if (!m || *m == members_.self())
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "node \"" + req->node() + "\" is not another member of this cluster"};
    if (!settings_.plaintext && !certificate_names(*call->auth_context(), members_.map().members()[*m]))
      return {grpc::StatusCode::PERMISSION_DENIED,
              "the caller's certificate does not name member " + req->node()};
    if (auto why = mismatch(*resp, *req); !why.empty()) {
      members_.refused(*m, why, models::wall_clock_ms());
      return {grpc::StatusCode::FAILED_PRECONDITION, why};
    }
    // Health comes from this node's own probes only: a member that reaches
    // us but that we cannot reach is down for us.
    return grpc::Status::OK;
  }

private:
  // Patient data: only for a caller whose certificate names a member, and
  // only once this node replayed its log.
  grpc::Status admit(const grpc::ServerContext& call) const {
    if (!settings_.plaintext) {
      bool member = false;
      for (auto& m : members_.map().members())
        member = member || certificate_names(*call.auth_context(), m);
      if (!member)
        return {grpc::StatusCode::PERMISSION_DENIED, "the caller's certificate names no member"};
    }
    if (!ready_.load())
      return {grpc::StatusCode::UNAVAILABLE, "recovering"};
    return grpc::Status::OK;
  }

  // Records an admitted data call (peer_handlers::audited).
  grpc::Status audited(const grpc::ServerContext& call, const char* rpc, std::string resource,
                       grpc::Status outcome) {
    if (!handlers_.audited)
      return outcome;
    std::string who;
    if (settings_.plaintext)
      who = "member@" + call.peer();
    for (auto& m : members_.map().members())
      if (!settings_.plaintext && certificate_names(*call.auth_context(), m))
        who += (who.empty() ? "member:" : "|") + m.name;
    return handlers_.audited(std::move(who), std::string{"PeerService/"} + rpc, std::move(resource),
                             std::move(outcome));
  }

  const peer_settings& settings_;
  cluster::membership& members_;
  const std::atomic<bool>& ready_;
  peer_handlers handlers_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_peer_service(const peer_settings& settings,
                                                 cluster::membership& members,
                                                 const std::atomic<bool>& ready,
                                                 peer_handlers handlers) {
  return std::make_unique<peer_service>(settings, members, ready, std::move(handlers));
}

channel_settings member_channel_settings(const peer_settings& settings, std::string target) {
  channel_settings cs;
  cs.target = std::move(target);
  cs.plaintext = settings.plaintext;
  cs.ca_file = settings.ca_file;
  cs.cert_file = settings.cert_file;
  cs.key_file = settings.key_file;
  return cs;
}

std::unique_ptr<internal::PeerService::Stub> make_peer_stub(const peer_settings& settings,
                                                            const std::string& address,
                                                            std::string& error) {
  grpc::ChannelArguments args;
  auto backoff = static_cast<int>(settings.probe_interval.count());
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, backoff);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, backoff);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff);
  auto channel = make_channel(member_channel_settings(settings, address), error, args);
  return channel ? internal::PeerService::NewStub(channel) : nullptr;
}

struct cluster_prober::peer {
  uint32_t index;
  std::unique_ptr<internal::PeerService::Stub> stub;
  std::string channel_error;
};

cluster_prober::cluster_prober(const peer_settings& settings, cluster::membership& members,
                               const std::atomic<bool>& ready)
    : settings_(settings), members_(members), ready_(ready) {
  auto& all = members_.map().members();
  for (uint32_t m = 0; m < all.size(); ++m) {
    if (m == members_.self())
      continue;
    auto p = std::make_unique<peer>();
    p->index = m;
    p->stub = make_peer_stub(settings_, all[m].address, p->channel_error);
    peers_.push_back(std::move(p));
  }
}

cluster_prober::~cluster_prober() {
  {
    std::lock_guard<std::mutex> g{mtx_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

// One hello; returns why the member refuses us (empty otherwise).
std::string cluster_prober::probe(peer& p) {
  auto name = members_.map().members()[p.index].name;
  if (!p.stub) {
    members_.failed(p.index, "no channel: " + p.channel_error);
    return {};
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + settings_.probe_timeout);
  auto mine = hello_of(settings_, members_, ready_.load());
  PeerHello theirs;
  auto st = p.stub->Hello(&ctx, mine, &theirs);
  if (st.ok()) {
    if (auto why = mismatch(mine, theirs); !why.empty()) {
      members_.refused(p.index, why, models::wall_clock_ms());
      return "member " + name + ": " + why;
    }
    members_.answered(p.index, theirs.ready(), models::wall_clock_ms(),
                      static_cast<uint16_t>(std::min<uint32_t>(theirs.api_port(), 65535)));
    return {};
  }
  if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    members_.refused(p.index, st.error_message(), models::wall_clock_ms());
    return "member " + name + ": " + st.error_message();
  }
  members_.failed(p.index, st.error_message());
  return {};
}

std::string cluster_prober::join() {
  std::string refusals;
  for (auto& p : peers_)
    if (auto why = probe(*p); !why.empty())
      refusals += (refusals.empty() ? "" : "; ") + why;
  return refusals;
}

void cluster_prober::start() {
  thread_ = std::thread{[this] {
    std::unique_lock<std::mutex> lock{mtx_};
    while (!wake_.wait_for(lock, settings_.probe_interval, [this] { return stopping_; })) {
      lock.unlock();
      for (auto& p : peers_)
        probe(*p);  // membership logs every change of state
      lock.lock();
    }
  }};
}

}  // namespace healthtwin::services
