#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <grpcpp/support/status.h>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
class Registry;
}  // namespace prometheus

namespace healthtwin::cluster {
class membership;
}

namespace healthtwin::services {

/// The cluster as Prometheus sees it, by its conventions; labels name
/// members, phases and codes, never a patient or device:
///   healthtwin_cluster_members{state}        listed members by state (up,
///                                            down, refused, unknown; this
///                                            node is up)
///   healthtwin_cluster_member_up{member}     1 while the member answers
///                                            its probes (this node: 1)
///   healthtwin_cluster_shards_owned          shards this node owns
///   healthtwin_cluster_members_version       the member list's version
///   healthtwin_cluster_forwarded_calls_total{kind,grpc_code}
///                                            calls this node sent to a
///                                            shard's owner (kind: unary,
///                                            stream, patient_parts) by
///                                            the owner's answer
///   healthtwin_cluster_handoff_phase_seconds{phase}
///                                            each hand-off's phases as its
///                                            source ran them: checkpoint
///                                            (fence to checkpointed),
///                                            stream (records sent), flip
///                                            (owner changed, shards let go)
///   healthtwin_cluster_handoffs_total{outcome}  done or abandoned
/// Member gauges are read from `members` by refresh() (before a scrape).
/// Thread-safe.
class cluster_metrics {
public:
  cluster_metrics(prometheus::Registry& registry, const cluster::membership& members);

  /// Reads the members' health and the shard map into the gauges.
  void refresh(int64_t now_ms);

  void on_forwarded(std::string_view kind, grpc::StatusCode code);
  void on_handoff_phase(std::string_view phase, double seconds);
  void on_handoff(bool done);

private:
  const cluster::membership& members_;
  std::array<prometheus::Gauge*, 4> members_by_state_{};  ///< by cluster::member_state
  prometheus::Family<prometheus::Gauge>& member_up_;
  prometheus::Gauge& shards_owned_;
  prometheus::Gauge& members_version_;
  prometheus::Family<prometheus::Counter>& forwarded_;
  prometheus::Family<prometheus::Histogram>& phases_;
  prometheus::Family<prometheus::Counter>& handoffs_;
  std::mutex mtx_;
  std::unordered_map<std::string, prometheus::Gauge*> up_by_member_;
};

}  // namespace healthtwin::services
