#include "services/peer/owner_forwarding.hpp"

#include "actors/cluster/membership.hpp"
#include "actors/models/twin_name.hpp"

namespace healthtwin::services {

std::shared_ptr<owner_stubs> make_owner_stubs(const std::shared_ptr<grpc::Channel>& channel) {
  auto s = std::make_shared<owner_stubs>();
  s->registry = v1::RegistryService::NewStub(channel);
  s->twins = v1::TwinService::NewStub(channel);
  s->clinical = v1::ClinicalService::NewStub(channel);
  s->ingest = v1::IngestService::NewStub(channel);
  s->alerts = v1::AlertService::NewStub(channel);
  s->rollouts = v1::RolloutService::NewStub(channel);
  s->fhir = v1::FhirService::NewStub(channel);
  return s;
}

owner_forwarding::owner_forwarding(const cluster::membership& members,
                                   const peer_settings& settings)
    : members_(members), settings_(settings), tls_(member_channel_settings(settings, {})) {}

owner_forwarding::~owner_forwarding() = default;

std::vector<uint32_t> owner_forwarding::others() const {
  auto map = members_.map();
  std::vector<uint32_t> out;
  for (uint32_t m = 0; m < map->members().size(); ++m)
    if (m != members_.self() && map->listed(m))
      out.push_back(m);
  return out;
}

uint32_t owner_forwarding::shard(std::string_view name) const {
  return models::shard_of(name, members_.shards());
}

std::optional<uint32_t> owner_forwarding::remote_owner(std::string_view name) const {
  auto s = shard(name);
  if (members_.owns(s))
    return std::nullopt;
  auto owner = members_.map()->owner(s);
  if (owner == members_.self())  // a hand-off in between: ask again
    return members_.owns(s) ? std::nullopt : std::optional<uint32_t>{owner};
  return owner;
}

std::string owner_forwarding::member_name(uint32_t m) const {
  auto map = members_.map();
  return m < map->members().size() ? map->members()[m].name : "?";
}

std::shared_ptr<owner_stubs> owner_forwarding::stubs(uint32_t m) {
  auto address = members_.api_address(m);
  if (address.empty())
    return nullptr;
  std::lock_guard<std::mutex> g{mtx_};
  auto& files = tls_files();
  if (slots_.size() <= m)
    slots_.resize(m + 1);
  auto& s = slots_[m];
  // First use, it came back on another port, or the certificates were rotated.
  if (!s.stubs || s.address != address || s.files != files) {
    auto cs = tls_;
    cs.target = address;
    std::string error;
    auto channel = make_channel(cs, error);
    if (!channel)
      return nullptr;
    s.address = address;
    s.files = files;
    s.stubs = make_owner_stubs(channel);
  }
  return s.stubs;
}

std::shared_ptr<internal::PeerService::Stub> owner_forwarding::peer(uint32_t m) {
  if (m == members_.self())
    return nullptr;
  auto address = members_.peer_address(m);
  if (address.empty())
    return nullptr;
  std::lock_guard<std::mutex> g{mtx_};
  auto& files = tls_files();
  if (peers_.size() <= m)
    peers_.resize(m + 1);
  auto& p = peers_[m];
  if (!p.stub || p.address != address || p.files != files) {
    std::string error;
    p.stub = make_peer_stub(settings_, address, error);
    p.address = address;
    p.files = files;
  }
  return p.stub;
}

const std::string& owner_forwarding::tls_files() {
  auto now = std::chrono::steady_clock::now();
  if (files_checked_ == std::chrono::steady_clock::time_point{} || now - files_checked_ >= std::chrono::seconds(1)) {
    files_ = tls_files_stamp(tls_);
    files_checked_ = now;
  }
  return files_;
}

}  // namespace healthtwin::services
