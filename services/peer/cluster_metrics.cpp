#include "services/peer/cluster_metrics.hpp"

#include <array>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "actors/cluster/membership.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

namespace {

constexpr std::array<const char*, 4> state_names{"unknown", "up", "down", "refused"};

}  // namespace

cluster_metrics::cluster_metrics(prometheus::Registry& registry, const cluster::membership& members)
    : members_(members),
      member_up_(prometheus::BuildGauge()
                     .Name("healthtwin_cluster_member_up")
                     .Help("1 while a listed member answers this node's probes (itself: 1)")
                     .Register(registry)),
      shards_owned_(prometheus::BuildGauge()
                        .Name("healthtwin_cluster_shards_owned")
                        .Help("Shards this node owns")
                        .Register(registry)
                        .Add({})),
      members_version_(prometheus::BuildGauge()
                           .Name("healthtwin_cluster_members_version")
                           .Help("Version of the member list (+1 per change of members)")
                           .Register(registry)
                           .Add({})),
      forwarded_(prometheus::BuildCounter()
                     .Name("healthtwin_cluster_forwarded_calls_total")
                     .Help("Calls sent to the member owning their shard, by kind and that member's answer")
                     .Register(registry)),
      phases_(prometheus::BuildHistogram()
                  .Name("healthtwin_cluster_handoff_phase_seconds")
                  .Help("Phases of shard hand-offs this node ran as their source")
                  .Register(registry)),
      handoffs_(prometheus::BuildCounter()
                    .Name("healthtwin_cluster_handoffs_total")
                    .Help("Shard hand-offs this node ran as their source, by outcome")
                    .Register(registry)) {
  auto& by_state = prometheus::BuildGauge()
                      .Name("healthtwin_cluster_members")
                      .Help("Members in the member list, by state as this node sees them (itself: up)")
                      .Register(registry);
  for (size_t i = 0; i < state_names.size(); ++i)
    members_by_state_[i] = &by_state.Add({{"state", state_names[i]}});
  for (auto* o : {"done", "abandoned"})
    handoffs_.Add({{"outcome", o}});
}

void cluster_metrics::refresh(int64_t now_ms) {
  auto map = members_.map();
  auto health = members_.health(now_ms);
  auto self = members_.self();
  std::array<double, state_names.size()> by_state{};
  std::lock_guard<std::mutex> guard{mtx_};
  std::unordered_map<std::string, prometheus::Gauge*> still;
  for (uint32_t m = 0; m < map->members().size(); ++m) {
    if (!map->listed(m))
      continue;
    auto state = m == self ? cluster::member_state::up
                 : m < health.size() ? health[m].state
                                     : cluster::member_state::unknown;
    auto i = static_cast<size_t>(state);
    if (i < by_state.size())
      by_state[i] += 1;
    auto& name = map->members()[m].name;
    auto known = up_by_member_.find(name);
    auto* gauge = known != up_by_member_.end() ? known->second : &member_up_.Add({{"member", name}});
    gauge->Set(state == cluster::member_state::up ? 1 : 0);
    still.emplace(name, gauge);
  }
  for (auto& [name, gauge] : up_by_member_)  // members taken off the list
    if (!still.count(name))
      member_up_.Remove(gauge);
  up_by_member_ = std::move(still);
  for (size_t i = 0; i < state_names.size(); ++i)
    members_by_state_[i]->Set(by_state[i]);
  shards_owned_.Set(map->owned_by(self));
  members_version_.Set(static_cast<double>(members_.state().members_version()));
}

void cluster_metrics::on_forwarded(std::string_view kind, grpc::StatusCode code) {
  forwarded_.Add({{"kind", std::string{kind}}, {"grpc_code", code_name(code)}}).Increment();
}

void cluster_metrics::on_handoff_phase(std::string_view phase, double seconds) {
  static const prometheus::Histogram::BucketBoundaries buckets{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  phases_.Add({{"phase", std::string{phase}}}, buckets).Observe(seconds);
}

void cluster_metrics::on_handoff(bool done) {
  handoffs_.Add({{"outcome", done ? "done" : "abandoned"}}).Increment();
}

}  // namespace healthtwin::services
