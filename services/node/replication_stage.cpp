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

namespace {

uint64_t group_id(const std::string& member) {
  std::string key = "healthtwin-store:" + member;
  return XXH64(key.data(), key.size(), 0);
}

}  // namespace

std::unique_ptr<replication_stage> replication_stage::start(const replication_settings& s, storage::store& own,
                                                            std::string& why) {
  std::unique_ptr<replication_stage> stage{new replication_stage()};
  stage->settings_ = s;
  stage->own_ = &own;
  auto cert = services::read_file(s.cert_file), key = services::read_file(s.key_file),
       ca = services::read_file(s.ca_file);
  if (!cert || !key || !ca) {
    why = "cannot read the certificate, key or cluster CA for the replication listener";
    return nullptr;
  }
  stage->tunnels_ = services::raft_tunnels::open(s.self, s.listen, {*cert, *key, *ca}, why);
  if (!stage->tunnels_)
    return nullptr;
  stage->machine_ = std::make_unique<services::replicated_store>(own, s.commit_timeout);
  services::raft_group_settings gs;
  gs.group = group_id(s.member);
  for (auto& v : s.voters)
    gs.members.push_back({v.name, v.address});
  gs.home = s.member;
  gs.dir = (std::filesystem::path{s.data_dir} / "raft").string();
  gs.election_timeout = s.election_timeout;
  gs.heartbeat = std::max(s.election_timeout / 10, std::chrono::milliseconds{20});
  gs.entry_key = own.derive_key("healthtwin raft entries v1");
  stage->group_ = services::raft_group::start(gs, *stage->tunnels_, *stage->machine_, why);
  if (!stage->group_) {
    why = "replicated store of " + s.member + ": " + why;
    return nullptr;
  }
  stage->machine_->attach(stage->group_.get());
  // A write whose fate is unknown: this process's memory may no longer
  // match its store. It exits, and its restart reads the store (ADR 0038).
  stage->machine_->on_in_doubt([](const std::string& reason) {
    spdlog::critical("replication: a write of this member's store is in doubt ({}); restarting to "
                     "rebuild from the store",
                     reason);
    // Flushed, not shut down: other threads may still log until _Exit, and
    // spdlog's functions dereference the default logger that shutdown drops.
    spdlog::default_logger_raw()->flush();
    std::_Exit(exit_write_in_doubt);
  });
  own.replicate_through(stage->machine_.get());
  spdlog::info("replication: voter {} of member {}'s store ({} voters), listening on port {}", s.self, s.member,
               s.voters.size(), stage->tunnels_->port());
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
  auto st = group_->status();
  gauges_->leading->Add({{"store", settings_.member}}).Set(st.leading ? 1 : 0);
  gauges_->term->Add({{"store", settings_.member}}).Set(static_cast<double>(st.term));
  gauges_->applied->Add({{"store", settings_.member}}).Set(static_cast<double>(st.applied_index));
  auto now = machine_->counts();
  auto& seen = gauges_->seen;
  gauges_->writes->Add({{"outcome", "committed"}}).Increment(static_cast<double>(now.committed - seen.committed));
  gauges_->writes->Add({{"outcome", "refused"}}).Increment(static_cast<double>(now.refused - seen.refused));
  gauges_->writes->Add({{"outcome", "in_doubt"}}).Increment(static_cast<double>(now.in_doubt - seen.in_doubt));
  gauges_->commit_seconds->Increment(now.commit_seconds - seen.commit_seconds);
  seen = now;
}

replication_stage::~replication_stage() {
  if (machine_)
    machine_->attach(nullptr);
  group_.reset();
  if (own_)
    own_->replicate_through(nullptr);
}

bool replication_stage::leading() const {
  return group_->status().leading;
}

bool replication_stage::wait_until_leading(std::chrono::milliseconds timeout) {
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto until = now() + timeout;
  bool standby = settings_.self != settings_.member;
  while (now() < until) {
    auto st = group_->status();
    if (st.leading && (!standby || (st.term == led_term_ && now() - led_since_ >= settings_.election_timeout))) {
      std::promise<services::raft_commit> done;
      group_->barrier([&](const services::raft_commit& c) { done.set_value(c); });
      auto c = done.get_future().get();
      if (c.committed()) {
        term_ = c.term;
        spdlog::info("replication: {} member {}'s store (term {}, applied {})",
                     standby ? "standby " + settings_.self + " leads" : "leading", settings_.member, c.term,
                     own_->replicated_index());
        return true;
      }
    } else if (st.leading && st.term != led_term_) {
      // A standby leads: it offers leadership to the member (raft_group's
      // home) and serves only if the member did not take it in time.
      led_term_ = st.term;
      led_since_ = now();
    } else if (now() > next_note_) {
      spdlog::info("replication: {} waiting to lead member {}'s store ({}; term {}, commit {}, applied {})",
                   settings_.self, settings_.member,
                   st.leader.empty() ? "no leader yet" : st.leader + " leads", st.term, st.commit_index,
                   st.applied_index);
      next_note_ = now() + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace healthtwin::node
