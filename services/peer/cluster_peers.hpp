#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/impl/service_type.h>
#include <caf/expected.hpp>
#include <optional>

#include "actors/cluster/membership.hpp"
#include "healthtwin/internal/peer.grpc.pb.h"
#include "services/grpc/client_channel.hpp"

namespace healthtwin::storage {
class store;
}

namespace healthtwin::services {

/// The cluster state this node persisted (default column family, key
/// "cluster"): nullopt when it has none (a new data directory, or a
/// cluster that never changed); an error names the record when it is not
/// valid (the node refuses to start).
caf::expected<std::optional<cluster::cluster_state>> load_cluster_state(storage::store& store);
/// Writes `state` durably (synced); empty, or why it failed.
std::string persist_cluster_state(storage::store& store, const cluster::cluster_state& state);

/// The cluster state a peer record carries; with `error` naming the field
/// (and an empty state) when it is not valid.
cluster::cluster_state state_from_record(const internal::ClusterStateRecord& record, std::string& error);
/// `state` as a peer record.
void state_to_record(const cluster::cluster_state& state, internal::ClusterStateRecord* out);

/// How members of a cluster reach each other (ADR 0012): an internal gRPC
/// service on the peer listener, mutual TLS with the cluster CA.
struct peer_settings {
  std::string cluster_name;
  uint32_t shards = 0;
  bool plaintext = false;  ///< --insecure-plaintext: development only
  std::string ca_file;     ///< CA of the members' certificates (both directions)
  std::string cert_file;   ///< this node's certificate and key (client side too)
  std::string key_file;
  uint16_t api_port = 0;   ///< this node's public gRPC port, told to the members
  /// The bearer-token settings' and keys' hashes (token_verifier), read at
  /// each hello: the keys may be reloaded. Members agree on the first and
  /// share a key.
  std::function<std::pair<std::string, std::vector<std::string>>()> token_keys;
  std::string node_key;    ///< storage::store::node_key_id() (members agree)
  std::string pseudonym_key;  ///< storage::store::pseudonym_key_id() (members agree)
  /// Where members' standbys serve while they lead (a name may repeat):
  /// probed when a member's own address does not answer, and their hosts'
  /// certificates speak for the member (ADR 0039).
  std::vector<cluster::member> standbys;
  std::chrono::milliseconds probe_interval{1000};
  std::chrono::milliseconds probe_timeout{500};
};

/// How this node reaches `target` as a member: the cluster CA and its own
/// certificate (plaintext with --insecure-plaintext).
channel_settings member_channel_settings(const peer_settings& settings, std::string target);

/// A PeerService stub for the member at `address`, reconnecting as often as
/// members probe (gRPC's default backoff, 1 s growing to 2 min, would keep
/// a member that came back unreachable); null with `error` set when the
/// certificate files cannot be read.
std::unique_ptr<internal::PeerService::Stub> make_peer_stub(const peer_settings& settings,
                                                            const std::string& address,
                                                            std::string& error);

/// What the PeerService answers from this node's data (api_services):
/// its own patients' summaries, patient parts, device links and releases.
struct peer_handlers {
  std::function<grpc::Status(const internal::SummaryQuery&, internal::SummaryList*)> summaries;
  std::function<grpc::Status(const grpc::ServerContext&, const internal::PatientParts&,
                             internal::PatientPartsAck*)>
      apply_patient_parts;
  std::function<grpc::Status(const grpc::ServerContext&, const internal::DeviceLink&)> link_device;
  std::function<grpc::Status(const grpc::ServerContext&, const internal::DeviceRelease&)>
      release_devices;
  /// Shard hand-off (services/peer/shard_handoff.hpp): merge a member's
  /// state, hand shards to another member, take a shard's records.
  std::function<grpc::Status(const internal::ClusterStateRecord&, internal::ClusterStateRecord*)>
      update_state;
  std::function<grpc::Status(const grpc::ServerContext&, const internal::HandOffRequest&,
                             internal::HandOffReport*)>
      hand_off;
  std::function<grpc::Status(grpc::ServerContext&, grpc::ServerReader<internal::ShardChunk>*,
                             internal::ShardReceipt*)>
      receive_shard;
  /// A tenant's alert events of this node, from a position on, until the
  /// caller ends the stream or the node stops (FHIR subscriptions).
  std::function<grpc::Status(grpc::ServerContext&, const internal::AlertFollowRequest&,
                             grpc::ServerWriter<v1::AlertEvent>*)>
      follow_alerts;
  /// Firmware rollouts held by another member: what they need of this
  /// node's devices and patients, and setting a device's desired firmware.
  std::function<grpc::Status(const internal::RolloutFactsRequest&, internal::RolloutFactsReply*)> rollout_facts;
  std::function<grpc::Status(const internal::FirmwareTarget&)> target_firmware;
  /// Records an admitted call in the audit log — principal ("member:NAME",
  /// the member the caller's certificate names), action, the patient or
  /// tenant it touches — and returns what the caller gets (the answer is
  /// withheld if the entry cannot be written). Unset: not recorded
  /// (benchmarks).
  std::function<grpc::Status(std::string principal, std::string action, std::string resource,
                             grpc::Status outcome)>
      audited;
};

/// The PeerService: answers hellos (FAILED_PRECONDITION naming what
/// differs) and GetClusterState, and members' data calls through
/// `handlers` when the caller's certificate names a member and this node is
/// ready.
std::unique_ptr<grpc::Service> make_peer_service(const peer_settings& settings,
                                                 cluster::membership& members,
                                                 const std::atomic<bool>& ready,
                                                 peer_handlers handlers);

/// What a prober does when a member's cluster state is newer than this
/// node's: `on_change` gets the shards this node gained and lost (the
/// state is persisted and published before).
using ownership_listener = std::function<void(const cluster::ownership_change&)>;

/// Says hello to every other listed member: once at start (join) and then
/// every probe interval on its own thread, recording each member's health.
/// A member whose cluster state differs (digest) is asked for it, and what
/// is newer there is merged here (docs/cluster.md, "Hand-off"), so every
/// member converges on the same shard owners within a probe interval.
class cluster_prober {
public:
  /// `fresh`: this node has no persisted cluster state (an empty data
  /// directory): at join it takes the state of the first member that
  /// answers, founded by whichever members (a node joining a running
  /// cluster). Otherwise a member founded by other members is refused.
  cluster_prober(const peer_settings& settings, cluster::membership& members,
                 const std::atomic<bool>& ready, bool fresh, ownership_listener on_change);
  ~cluster_prober();

  /// One round of hellos. Empty when no reachable member places twins
  /// differently; otherwise why (naming the member and the field), and
  /// this node must not join. Members that do not answer are not an error.
  std::string join();

  /// Probes every interval until destroyed.
  void start();

private:
  struct peer;
  std::string probe(peer& p, bool joining);
  std::string take_state(peer& p, const std::string& name, bool joining);
  void refresh_peers();
  const peer_settings settings_;
  cluster::membership& members_;
  const std::atomic<bool>& ready_;
  bool fresh_;
  ownership_listener on_change_;
  std::vector<std::unique_ptr<peer>> peers_;  // by member number; null: self or not listed
  std::mutex mtx_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace healthtwin::services
