#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "healthtwin/internal/peer.grpc.pb.h"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "healthtwin/v1/clinical.grpc.pb.h"
#include "healthtwin/v1/fhir.grpc.pb.h"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "healthtwin/v1/rollout.grpc.pb.h"
#include "healthtwin/v1/twin.grpc.pb.h"
#include "services/grpc/client_channel.hpp"
#include "services/peer/cluster_peers.hpp"

namespace healthtwin::cluster {
class membership;
}

namespace healthtwin::services {

/// Stubs of one member's public API.
struct owner_stubs {
  std::unique_ptr<v1::RegistryService::Stub> registry;
  std::unique_ptr<v1::TwinService::Stub> twins;
  std::unique_ptr<v1::ClinicalService::Stub> clinical;
  std::unique_ptr<v1::IngestService::Stub> ingest;
  std::unique_ptr<v1::AlertService::Stub> alerts;
  std::unique_ptr<v1::RolloutService::Stub> rollouts;
  std::unique_ptr<v1::FhirService::Stub> fhir;
};

/// Stubs of every public service over `channel`.
std::shared_ptr<owner_stubs> make_owner_stubs(const std::shared_ptr<grpc::Channel>& channel);

/// Calls for a twin whose shard another member owns go to that member's
/// public API, with the caller's token (docs/cluster.md, "Forwarding").
/// Owners are read from the membership's current map, so a hand-off
/// redirects calls as soon as this node learns of it. Thread-safe; channels
/// are made on first use and kept (made again when a member's address
/// changes).
class owner_forwarding {
public:
  /// Reaches the members as `settings` say (the cluster CA, this node's
  /// certificate), like the prober.
  owner_forwarding(const cluster::membership& members, const peer_settings& settings);
  ~owner_forwarding();

  /// The member owning `name`'s shard when it is not this node.
  std::optional<uint32_t> remote_owner(std::string_view name) const;
  /// The shard of `name`.
  uint32_t shard(std::string_view name) const;
  std::string member_name(uint32_t m) const;

  /// Stubs for member `m`; null until a probe told its API port. Shared:
  /// a member that comes back on another port gets new stubs while calls
  /// may still hold the old ones.
  std::shared_ptr<owner_stubs> stubs(uint32_t m);
  /// Member `m`'s PeerService (its peer listener, mutual TLS); null for
  /// this node, or if its channel could not be made.
  std::shared_ptr<internal::PeerService::Stub> peer(uint32_t m);
  /// Every listed member but this node.
  std::vector<uint32_t> others() const;

private:
  // A channel is made again when the member's address or this node's
  // certificate files (tls_files_stamp) changed.
  struct slot {
    std::string address, files;
    std::shared_ptr<owner_stubs> stubs;
  };
  struct peer_slot {
    std::string address, files;
    std::shared_ptr<internal::PeerService::Stub> stub;
  };
  const cluster::membership& members_;
  peer_settings settings_;
  channel_settings tls_;
  // The stamp of this node's certificate files, looked at once a second at
  // most (not on every forwarded call); under mtx_.
  const std::string& tls_files();
  std::string files_;
  std::chrono::steady_clock::time_point files_checked_;

  std::mutex mtx_;
  std::vector<slot> slots_;
  std::vector<peer_slot> peers_;
};

/// Metadata a forwarded call carries, naming the forwarding member: the
/// owner serves it itself or refuses; it never forwards again.
inline constexpr const char* forwarded_by_header = "x-healthtwin-forwarded-by";

}  // namespace healthtwin::services
