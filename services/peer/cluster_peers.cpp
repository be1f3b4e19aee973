#include "services/peer/cluster_peers.hpp"

#include <algorithm>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "healthtwin/internal/peer.grpc.pb.h"
#include "services/grpc/client_channel.hpp"
#include "storage/cluster_records.hpp"
#include "storage/errc.hpp"
#include "storage/store.hpp"

#include <spdlog/spdlog.h>

namespace healthtwin::services {

namespace {

using internal::PeerHello;

PeerHello hello_of(const peer_settings& s, const cluster::membership& members, bool ready) {
  PeerHello h;
  h.set_cluster(s.cluster_name);
  h.set_node(members.self_member().name);
  h.set_address(members.self_member().address);
  h.set_shards(s.shards);
  h.set_twin_hash(std::string{models::twin_hash_name});
  h.set_placement_hash(std::string{cluster::shard_map::hash_name});
  auto map = members.map();
  for (uint32_t m = 0; m < map->members().size(); ++m)
    if (map->listed(m))
      h.add_members(map->members()[m].name);
  h.set_ready(ready);
  h.set_api_port(s.api_port);
  if (s.token_keys) {
    auto [claims, keys] = s.token_keys();
    h.set_token_keys(claims);
    for (auto& k : keys)
      h.add_token_key_hashes(k);
  }
  h.set_node_key(s.node_key);
  h.set_pseudonym_key(s.pseudonym_key);
  h.set_founding(members.founding());
  h.set_state_digest(members.digest());
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
  // accept it: the same audience and issuer, and a key in common (during a
  // key rotation the sets differ, but share the key tokens are signed with).
  auto shared = std::any_of(mine.token_key_hashes().begin(), mine.token_key_hashes().end(), [&](auto& k) {
    return std::find(theirs.token_key_hashes().begin(), theirs.token_key_hashes().end(), k) !=
           theirs.token_key_hashes().end();
  });
  if (theirs.token_keys() != mine.token_keys() || !shared)
    return differs("bearer-token keys", mine.token_keys().substr(0, 12) + (shared ? "" : ", no key in common"),
                   theirs.token_keys().substr(0, 12));
  // A hand-off moves sealed values and wrapped patient keys as they are.
  if (theirs.node_key() != mine.node_key())
    return differs("node key (--encryption-key-file)", mine.node_key(), theirs.node_key());
  // Erasure markers name patients by pseudonym and move with the shards.
  if (theirs.pseudonym_key() != mine.pseudonym_key())
    return differs("pseudonym key (--pseudonym-key-file, or the node key)", mine.pseudonym_key(),
                   theirs.pseudonym_key());
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

// ... or the host of one of its standbys' addresses (ADR 0039): a standby
// that serves the member speaks for it with its own host's certificate.
bool certificate_names(const grpc::AuthContext& auth, const cluster::member& m,
                       const std::vector<cluster::member>& standbys) {
  return certificate_names(auth, m) || std::any_of(standbys.begin(), standbys.end(), [&](auto& s) {
           return s.name == m.name && certificate_names(auth, s);
         });
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

  grpc::Status RolloutFacts(grpc::ServerContext* call, const internal::RolloutFactsRequest* req,
                            internal::RolloutFactsReply* resp) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    if (!handlers_.rollout_facts)
      return {grpc::StatusCode::UNIMPLEMENTED, "no firmware rollouts here"};
    // Which rollouts hold some devices (a device twin's read): no patient
    // data, asked on every device twin read in a cluster; not recorded.
    if (req->devices().empty() && req->patients().empty() && req->device_type() == 0)
      return handlers_.rollout_facts(*req, resp);
    // Patients' care, devices' records: named by tenant (a batch spans many).
    auto first = !req->patients().empty() ? req->patients(0)
                 : !req->devices().empty() ? req->devices(0)
                 : !req->rollouts_of().empty() ? req->rollouts_of(0)
                                               : "tenants/" + req->tenant();
    auto resource = "tenants/" + models::bounded(std::string{models::tenant_of(first)}, 64);
    return audited(*call, "RolloutFacts", resource, handlers_.rollout_facts(*req, resp));
  }

  grpc::Status TargetFirmware(grpc::ServerContext* call, const internal::FirmwareTarget* req,
                              internal::FirmwareTargetAck*) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    if (!handlers_.target_firmware)
      return {grpc::StatusCode::UNIMPLEMENTED, "no firmware rollouts here"};
    return audited(*call, "TargetFirmware", models::bounded(req->device(), 256), handlers_.target_firmware(*req));
  }

  grpc::Status Hello(grpc::ServerContext* call, const PeerHello* req, PeerHello* resp) override {
    *resp = hello_of(settings_, members_, ready_.load());
    if (req->node() == members_.self_member().name)
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "node \"" + models::bounded(req->node(), 253) + "\" is this member's own name"};
    auto map = members_.map();
    auto m = map->find(req->node());
    // A node that is not (yet) in the member list may say hello too: a
    // node joining the cluster takes its state from the members first.
    auto claimed = m && !map->members()[*m].address.empty() ? map->members()[*m]
                                                            : cluster::member{req->node(), req->address()};
    if (!settings_.plaintext && !certificate_names(*call->auth_context(), claimed, settings_.standbys))
      return {grpc::StatusCode::PERMISSION_DENIED,
              "the caller's certificate does not name member " + models::bounded(req->node(), 253)};
    if (auto why = mismatch(*resp, *req); !why.empty()) {
      if (m)
        members_.refused(*m, why, models::wall_clock_ms());
      return {grpc::StatusCode::FAILED_PRECONDITION, why};
    }
    // Health comes from this node's own probes only: a member that reaches
    // us but that we cannot reach is down for us.
    return grpc::Status::OK;
  }

  // Not patient data: the handshake already required a certificate of the
  // cluster CA.
  grpc::Status GetClusterState(grpc::ServerContext*, const internal::ClusterStateRequest*,
                               internal::ClusterStateRecord* resp) override {
    if (!resp->ParseFromString(members_.state().encode()))
      return {grpc::StatusCode::INTERNAL, "cannot encode the cluster state"};
    return grpc::Status::OK;
  }

  grpc::Status UpdateClusterState(grpc::ServerContext* call, const internal::ClusterStateRecord* req,
                                  internal::ClusterStateRecord* resp) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    if (!handlers_.update_state)
      return {grpc::StatusCode::UNIMPLEMENTED, "no shard hand-off here"};
    return audited(*call, "UpdateClusterState", "cluster", handlers_.update_state(*req, resp));
  }

  grpc::Status HandOffShards(grpc::ServerContext* call, const internal::HandOffRequest* req,
                             internal::HandOffReport* resp) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    if (!handlers_.hand_off)
      return {grpc::StatusCode::UNIMPLEMENTED, "no shard hand-off here"};
    return audited(*call, "HandOffShards", "cluster", handlers_.hand_off(*call, *req, resp));
  }

  grpc::Status ReceiveShard(grpc::ServerContext* call, grpc::ServerReader<internal::ShardChunk>* reader,
                            internal::ShardReceipt* resp) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    if (!handlers_.receive_shard)
      return {grpc::StatusCode::UNIMPLEMENTED, "no shard hand-off here"};
    return audited(*call, "ReceiveShard", "cluster", handlers_.receive_shard(*call, reader, resp));
  }

  grpc::Status FollowAlerts(grpc::ServerContext* call, const internal::AlertFollowRequest* req,
                           grpc::ServerWriter<v1::AlertEvent>* writer) override {
    if (auto st = admit(*call); !st.ok())
      return st;
    if (!handlers_.follow_alerts)
      return {grpc::StatusCode::UNIMPLEMENTED, "no alert events here"};
    // Recorded when it opens (a stream may last for months).
    auto opened = audited(*call, "FollowAlerts", "tenants/" + models::bounded(req->tenant(), 64), grpc::Status::OK);
    if (!opened.ok())
      return opened;
    return handlers_.follow_alerts(*call, *req, writer);
  }

private:
  // Patient data: only for a caller whose certificate names a member, and
  // only once this node replayed its log.
  grpc::Status admit(const grpc::ServerContext& call) const {
    if (!settings_.plaintext) {
      bool member = false;
      auto map = members_.map();
      for (uint32_t m = 0; m < map->members().size(); ++m)
        member = member || (map->listed(m) &&
                            certificate_names(*call.auth_context(), map->members()[m], settings_.standbys));
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
    auto map = members_.map();
    for (auto& m : map->members())
      if (!settings_.plaintext && certificate_names(*call.auth_context(), m, settings_.standbys))
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

cluster::cluster_state state_from_record(const internal::ClusterStateRecord& record, std::string& error) {
  auto s = cluster::cluster_state::decode(record.SerializeAsString(), error);
  return s ? std::move(*s) : cluster::cluster_state{};
}

void state_to_record(const cluster::cluster_state& state, internal::ClusterStateRecord* out) {
  out->ParseFromString(state.encode());
}

caf::expected<std::optional<cluster::cluster_state>> load_cluster_state(storage::store& store) {
  auto bytes = storage::load_cluster_record(store);
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<cluster::cluster_state>{};
  std::string error;
  auto state = cluster::cluster_state::decode(**bytes, error);
  if (!state)
    return caf::make_error(storage::errc::invalid_record,
                           "the persisted cluster state (meta/" + std::string{storage::cluster_state_key} +
                               ") is not valid: " + error);
  return std::optional<cluster::cluster_state>{std::move(*state)};
}

std::string persist_cluster_state(storage::store& store, const cluster::cluster_state& state) {
  if (auto err = storage::persist_cluster_record(store, state.encode()))
    return storage::describe(err);
  return {};
}

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

// A member's peer listener, and those of its standbys (ADR 0039): when
// the one that answered last does not, the others are tried in turn.
struct cluster_prober::peer {
  uint32_t index;
  std::string files;  // tls_files_stamp when the stubs were made
  struct address {
    std::string at;  // host:port
    bool standby = false;
    std::unique_ptr<internal::PeerService::Stub> stub;
    std::string channel_error;
  };
  std::vector<address> addresses;  // the member's own first
  size_t current = 0;
};

cluster_prober::cluster_prober(const peer_settings& settings, cluster::membership& members,
                               const std::atomic<bool>& ready, bool fresh,
                               ownership_listener on_change)
    : settings_(settings), members_(members), ready_(ready), fresh_(fresh),
      on_change_(std::move(on_change)) {
  refresh_peers();
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

// One stub per listed member but this node, made again when its address
// changed (a new member list) or this node's certificate files did (rotated).
void cluster_prober::refresh_peers() {
  auto files = tls_files_stamp(member_channel_settings(settings_, {}));
  auto map = members_.map();
  auto& all = map->members();
  if (peers_.size() < all.size())
    peers_.resize(all.size());
  for (uint32_t m = 0; m < all.size(); ++m) {
    auto& p = peers_[m];
    if (m == members_.self() || !map->listed(m) || all[m].address.empty()) {
      p.reset();
      continue;
    }
    if (p && p->addresses.front().at == all[m].address && p->files == files)
      continue;
    p = std::make_unique<peer>();
    p->index = m;
    p->files = files;
    p->addresses.push_back({all[m].address, false, nullptr, {}});
    for (auto& s : settings_.standbys)
      if (s.name == all[m].name)
        p->addresses.push_back({s.address, true, nullptr, {}});
    for (auto& a : p->addresses)
      a.stub = make_peer_stub(settings_, a.at, a.channel_error);
  }
}

// Asks member `p` for its state and takes what is newer there (all of it
// when this node joins with an empty directory). Why it must not join,
// or empty.
std::string cluster_prober::take_state(peer& p, const std::string& name, bool joining) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + settings_.probe_timeout);
  internal::ClusterStateRecord record;
  auto st = p.addresses[p.current].stub->GetClusterState(&ctx, {}, &record);
  if (!st.ok())
    return {};  // asked again at the next probe
  std::string error;
  auto theirs = cluster::cluster_state::decode(record.SerializeAsString(), error);
  if (!theirs) {
    spdlog::error("cluster: member {} sent a cluster state that is not valid: {}", name, error);
    return {};
  }
  auto mine = members_.state();
  auto why = mine.incompatible(*theirs);
  cluster::ownership_change change;
  if (why.empty()) {
    change = members_.merge(*theirs, error);
  } else if (joining && fresh_) {
    spdlog::info("cluster: joining the cluster of member {} ({} members, state {})", name,
                 theirs->members().size(), theirs->digest());
    change = members_.adopt(*theirs, error);
  } else {
    members_.refused(p.index, why, models::wall_clock_ms());
    return "member " + name + ": " + why;
  }
  if (!error.empty()) {
    spdlog::error("cluster: cannot persist the cluster state: {}", error);
    return {};
  }
  fresh_ = false;  // it has a state of its cluster now
  if (change.changed) {
    spdlog::info("cluster: state {} from member {}: {} shard(s) gained, {} lost", members_.digest(),
                 name, change.gained.size(), change.lost.size());
    refresh_peers();
    if (on_change_)
      on_change_(change);
  }
  return {};
}

// One hello, at the address that answered last and then at the member's
// others until one answers ready (a standby serves the member only while
// it leads its store); returns why the member refuses us (empty otherwise).
std::string cluster_prober::probe(peer& p, bool joining) {
  auto name = members_.map()->members()[p.index].name;
  auto mine = hello_of(settings_, members_, ready_.load());
  std::string failure;
  std::optional<size_t> answered_at;
  PeerHello answer;
  for (size_t k = 0; k < p.addresses.size(); ++k) {
    auto at = (p.current + k) % p.addresses.size();
    auto& a = p.addresses[at];
    if (!a.stub) {
      failure = failure.empty() ? "no channel: " + a.channel_error : failure;
      continue;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + settings_.probe_timeout);
    PeerHello theirs;
    auto st = a.stub->Hello(&ctx, mine, &theirs);
    if (st.ok() && theirs.node() != name) {  // a standby of another member, misconfigured
      failure = failure.empty() ? a.at + " answers as \"" + models::bounded(theirs.node(), 253) + "\"" : failure;
      continue;
    }
    if (st.ok()) {
      if (auto why = mismatch(mine, theirs); !why.empty()) {
        members_.refused(p.index, why, models::wall_clock_ms());
        return "member " + name + ": " + why;
      }
      if (!answered_at || theirs.ready()) {  // the first answer, unless one is ready
        answered_at = at;
        answer = theirs;
      }
      if (theirs.ready())
        break;
      continue;
    }
    if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION && !a.standby) {
      members_.refused(p.index, st.error_message(), models::wall_clock_ms());
      return "member " + name + ": " + st.error_message();
    }
    if (failure.empty())
      failure = st.error_message();
  }
  if (!answered_at) {
    members_.failed(p.index, failure);
    return {};
  }
  p.current = *answered_at;
  auto& a = p.addresses[*answered_at];
  members_.answered(p.index, answer.ready(), models::wall_clock_ms(),
                    static_cast<uint16_t>(std::min<uint32_t>(answer.api_port(), 65535)),
                    a.standby ? a.at : std::string{});
  if (answer.state_digest() != mine.state_digest())
    return take_state(p, name, joining);
  fresh_ = false;
  return {};
}

std::string cluster_prober::join() {
  std::string refusals;
  for (size_t i = 0; i < peers_.size(); ++i)
    if (peers_[i])
      if (auto why = probe(*peers_[i], true); !why.empty())
        refusals += (refusals.empty() ? "" : "; ") + why;
  return refusals;
}

void cluster_prober::start() {
  thread_ = std::thread{[this] {
    std::unique_lock<std::mutex> lock{mtx_};
    while (!wake_.wait_for(lock, settings_.probe_interval, [this] { return stopping_; })) {
      lock.unlock();
      refresh_peers();
      for (size_t i = 0; i < peers_.size(); ++i)
        if (peers_[i])
          probe(*peers_[i], false);  // membership logs every change of state
      lock.lock();
    }
  }};
}

}  // namespace healthtwin::services
