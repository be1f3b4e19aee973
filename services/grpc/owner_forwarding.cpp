#include "services/grpc/owner_forwarding.hpp"

#include "actors/cluster/membership.hpp"
#include "actors/models/twin_name.hpp"

namespace healthtwin::services {

owner_forwarding::owner_forwarding(const cluster::membership& members,
                                   const peer_settings& settings)
    : members_(members), tls_(member_channel_settings(settings, {})) {
  auto& all = members_.map().members();
  slots_.resize(all.size());
  for (uint32_t m = 0; m < all.size(); ++m) {
    std::string error;
    peers_.push_back(m == members_.self() ? nullptr : make_peer_stub(settings, all[m].address, error));
  }
}

std::vector<uint32_t> owner_forwarding::others() const {
  std::vector<uint32_t> out;
  for (uint32_t m = 0; m < members_.map().members().size(); ++m)
    if (m != members_.self())
      out.push_back(m);
  return out;
}

owner_forwarding::~owner_forwarding() = default;

uint32_t owner_forwarding::shard(std::string_view name) const {
  return models::shard_of(name, members_.map().shards());
}

std::optional<uint32_t> owner_forwarding::remote_owner(std::string_view name) const {
  auto owner = members_.map().owner(shard(name));
  if (owner == members_.self())
    return std::nullopt;
  return owner;
}

const std::string& owner_forwarding::member_name(uint32_t m) const {
  return members_.map().members()[m].name;
}

std::shared_ptr<owner_stubs> owner_forwarding::stubs(uint32_t m) {
  auto address = members_.api_address(m);
  if (address.empty())
    return nullptr;
  std::lock_guard<std::mutex> g{mtx_};
  auto& s = slots_[m];
  if (!s || s->address != address) {  // first use, or it came back on another port
    auto cs = tls_;
    cs.target = address;
    std::string error;
    auto channel = make_channel(cs, error);
    if (!channel)
      return nullptr;
    s = std::make_unique<slot>();
    s->address = address;
    s->stubs = std::make_shared<owner_stubs>();
    s->stubs->registry = v1::RegistryService::NewStub(channel);
    s->stubs->twins = v1::TwinService::NewStub(channel);
    s->stubs->clinical = v1::ClinicalService::NewStub(channel);
    s->stubs->ingest = v1::IngestService::NewStub(channel);
    s->stubs->alerts = v1::AlertService::NewStub(channel);
  }
  return s->stubs;
}

}  // namespace healthtwin::services
