#include "services/node/replication_stage.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "services/grpc/read_file.hpp"
#include "services/node/node.hpp"
#include "services/peer/raft_group.hpp"
#include "services/peer/raft_tunnels.hpp"
#include "services/peer/replicated_store.hpp"

namespace healthtwin::node {

std::vector<std::string> groups_of(const std::vector<cluster::member>& members, const std::string& self,
                                   uint32_t factor) {
  std::vector<std::string> ring;
  for (auto& m : members)
    ring.push_back(m.name);
  std::sort(ring.begin(), ring.end());
  auto n = ring.size();
  auto at = std::find(ring.begin(), ring.end(), self) - ring.begin();
  std::vector<std::string> out;
  // Member i's voters are i .. i+factor-1: self votes in the groups of
  // itself and its factor-1 predecessors.
  for (uint32_t k = 0; k < factor && k < n; ++k)
    out.push_back(ring[(at + n - k) % n]);
  return out;
}

struct replication_stage::replica {
  std::string member;
  std::unique_ptr<storage::store> store;  // a replica's own; null for the own group
  std::unique_ptr<services::replicated_store> machine;
  std::unique_ptr<services::raft_group> group;
};

namespace {

uint64_t group_id(const std::string& member) {
  std::string key = "healthtwin-store:" + member;
  return XXH64(key.data(), key.size(), 0);
}

std::vector<services::raft_peer> voters_of(const replication_settings& s, const std::string& member) {
  std::vector<services::raft_peer> out;
  for (auto& m : s.members)
    if (auto g = groups_of(s.members, m.name, s.factor); std::find(g.begin(), g.end(), member) != g.end())
      out.push_back({m.name, m.address});
  return out;
}

}  // namespace

std::unique_ptr<replication_stage> replication_stage::start(const replication_settings& s, storage::store& own,
                                                            std::string& why) {
  std::unique_ptr<replication_stage> stage{new replication_stage()};
  stage->settings_ = s;
  stage->own_ = &own;
  services::tunnel_credentials tls;
  auto cert = services::read_file(s.cert_file), key = services::read_file(s.key_file),
       ca = services::read_file(s.ca_file);
  if (!cert || !key || !ca) {
    why = "cannot read the certificate, key or cluster CA for the replication listener";
    return nullptr;
  }
  tls = {*cert, *key, *ca};
  stage->tunnels_ = services::raft_tunnels::open(s.self, s.listen, tls, why);
  if (!stage->tunnels_)
    return nullptr;
  auto entry_key = own.derive_key("healthtwin raft entries v1");
  for (auto& member : groups_of(s.members, s.self, s.factor)) {
    auto r = std::make_unique<replica>();
    r->member = member;
    storage::store* store = &own;
    if (member != s.self) {
      auto settings = s.store;
      settings.data_dir = (std::filesystem::path{s.data_dir} / "replicas" / member).string();
      std::error_code ec;
      std::filesystem::create_directories(settings.data_dir, ec);
      auto opened = storage::store::open(settings);
      if (!opened) {
        why = "cannot open the replica of " + member + ": " + storage::describe(opened.error());
        return nullptr;
      }
      r->store = std::move(*opened);
      store = r->store.get();
    }
    r->machine = std::make_unique<services::replicated_store>(*store, s.commit_timeout);
    services::raft_group_settings gs;
    gs.group = group_id(member);
    gs.members = voters_of(s, member);
    gs.home = member;
    gs.dir = (std::filesystem::path{s.data_dir} / "raft" / member).string();
    gs.election_timeout = s.election_timeout;
    gs.heartbeat = std::max(s.election_timeout / 10, std::chrono::milliseconds{20});
    gs.entry_key = entry_key;
    r->group = services::raft_group::start(gs, *stage->tunnels_, *r->machine, why);
    if (!r->group) {
      why = "replicated store of " + member + ": " + why;
      return nullptr;
    }
    r->machine->attach(r->group.get());
    if (member == s.self) {
      // A write whose fate is unknown: this member's memory may no longer
      // match its store. It exits, and its restart reads the store (ADR 0038).
      r->machine->on_in_doubt([](const std::string& reason) {
        spdlog::critical("replication: a write of this member's store is in doubt ({}); restarting to "
                         "rebuild from the store",
                         reason);
        spdlog::shutdown();
        std::_Exit(exit_write_in_doubt);
      });
      own.replicate_through(r->machine.get());
    }
    stage->replicas_.push_back(std::move(r));
  }
  spdlog::info("replication: member {} of {} groups (factor {}), listening on port {}", s.self,
               stage->replicas_.size(), s.factor, stage->tunnels_->port());
  return stage;
}

struct replication_stage::gauges {
  prometheus::Family<prometheus::Gauge>* leading;
  prometheus::Family<prometheus::Gauge>* term;
  prometheus::Family<prometheus::Gauge>* applied;
  prometheus::Family<prometheus::Counter>* writes;
  prometheus::Counter* commit_seconds;
  std::mutex mutex;  // refresh() may run for two scrapes at once
  services::replicated_store::write_counts seen;
};

void replication_stage::expose(prometheus::Registry& registry) {
  gauges_ = std::make_unique<gauges>();
  gauges_->leading = &prometheus::BuildGauge()
                          .Name("healthtwin_replication_leading")
                          .Help("1 while this member leads the group of the store (member name) it holds")
                          .Register(registry);
  gauges_->term = &prometheus::BuildGauge()
                       .Name("healthtwin_replication_term")
                       .Help("the Raft term of each store's group as this member sees it")
                       .Register(registry);
  gauges_->applied = &prometheus::BuildGauge()
                          .Name("healthtwin_replication_applied_index")
                          .Help("the last batch of each store's group applied here")
                          .Register(registry);
  gauges_->writes = &prometheus::BuildCounter()
                         .Name("healthtwin_replication_writes_total")
                         .Help("writes of this member's store through its group, by outcome "
                               "(committed, refused, in_doubt)")
                         .Register(registry);
  gauges_->commit_seconds = &prometheus::BuildCounter()
                                 .Name("healthtwin_replication_commit_seconds_total")
                                 .Help("seconds the committed writes waited for a majority")
                                 .Register(registry)
                                 .Add({});
}

void replication_stage::refresh() {
  if (!gauges_)
    return;
  std::lock_guard lock{gauges_->mutex};
  for (auto& r : replicas_) {
    auto st = r->group->status();
    gauges_->leading->Add({{"store", r->member}}).Set(st.leading ? 1 : 0);
    gauges_->term->Add({{"store", r->member}}).Set(static_cast<double>(st.term));
    gauges_->applied->Add({{"store", r->member}}).Set(static_cast<double>(st.applied_index));
  }
  auto now = replicas_.front()->machine->counts();
  auto& seen = gauges_->seen;
  gauges_->writes->Add({{"outcome", "committed"}}).Increment(static_cast<double>(now.committed - seen.committed));
  gauges_->writes->Add({{"outcome", "refused"}}).Increment(static_cast<double>(now.refused - seen.refused));
  gauges_->writes->Add({{"outcome", "in_doubt"}}).Increment(static_cast<double>(now.in_doubt - seen.in_doubt));
  gauges_->commit_seconds->Increment(now.commit_seconds - seen.commit_seconds);
  seen = now;
}

replication_stage::~replication_stage() {
  for (auto& r : replicas_)
    r->machine->attach(nullptr);
  for (auto& r : replicas_)
    r->group.reset();
  if (own_)
    own_->replicate_through(nullptr);
}

bool replication_stage::wait_until_leading(std::chrono::milliseconds timeout) {
  auto& own = *replicas_.front();
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    auto st = own.group->status();
    if (st.leading) {
      std::promise<services::raft_commit> done;
      own.group->barrier([&](const services::raft_commit& c) { done.set_value(c); });
      auto c = done.get_future().get();
      if (c.committed()) {
        spdlog::info("replication: leading this member's store (term {}, applied {})", c.term,
                     own_->replicated_index());
        return true;
      }
    } else if (std::chrono::steady_clock::now() > next_note_) {
      spdlog::info("replication: waiting to lead this member's store ({}; term {}, commit {}, applied {})",
                   st.leader.empty() ? "no leader yet" : st.leader + " leads and hands over once it can", st.term,
                   st.commit_index, st.applied_index);
      next_note_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace healthtwin::node
