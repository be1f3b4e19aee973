#include "services/node/replication_stage.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include <unistd.h>

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
#include "services/peer/store_copy.hpp"

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
  gs.snapshot_threshold = s.snapshot_entries;
  gs.snapshot_trailing = std::max(s.snapshot_entries / 4, 4u);
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
  // A voter behind the group's snapshot asks the leader for its store.
  stage->tunnels_->serve_copies(gs.group, [raw = stage.get()](const std::string& peer, int fd) {
    auto scratch = raw->settings_.data_dir + ".copy-out-" + std::to_string(++raw->copies_sent_);
    raw->run_copy([raw, peer, fd, scratch] {
      if (!raw->machine_->apply_failure().empty()) {  // behind a snapshot, or an apply failed
        spdlog::warn("replication: {} asked for a copy of the store, which this voter does not hold whole", peer);
      } else if (auto why = services::send_store_copy(*raw->own_, scratch, fd); !why.empty()) {
        spdlog::error("replication: sending a copy of the store to {} failed: {}", peer, why);
      } else {
        spdlog::info("replication: sent a copy of the store to {}", peer);
      }
      ::close(fd);
    });
  });
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
                          .Help("1 while this process leads the group of the store it holds (label: the member)")
                          .Register(registry);
  gauges_->term = &prometheus::BuildGauge()
                       .Name("healthtwin_replication_term")
                       .Help("the Raft term of the store's group as this process sees it")
                       .Register(registry);
  gauges_->applied = &prometheus::BuildGauge()
                          .Name("healthtwin_replication_applied_index")
                          .Help("the last batch of the store's group applied here")
                          .Register(registry);
  gauges_->writes = &prometheus::BuildCounter()
                         .Name("healthtwin_replication_writes_total")
                         .Help("writes of the store through its group from this process, by outcome "
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
  tunnels_.reset();  // copies in flight see their stream close
  {
    std::lock_guard lock{copies_mutex_};
    for (auto& c : copies_)
      c.thread.join();
  }
  if (own_)
    own_->replicate_through(nullptr);
}

// Behind the group's snapshot: asks the leader for a copy of its store
// (at most one at a time, again 5 s after a failure) and stages it.
void replication_stage::fetch_copy_if_needed() {
  auto needed = machine_->needs_copy();
  if (needed == 0 || copy_staged_ || fetching_ || std::chrono::steady_clock::now() < next_fetch_)
    return;
  auto leader = group_->status().leader;
  auto voter = std::find_if(settings_.voters.begin(), settings_.voters.end(),
                            [&](auto& v) { return v.name == leader; });
  if (leader.empty() || leader == settings_.self || voter == settings_.voters.end())
    return;
  fetching_ = true;
  next_fetch_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  spdlog::info("replication: asking {} for a copy of member {}'s store (this voter is behind snapshot {})", leader,
               settings_.member, needed);
  auto group = group_id(settings_.member);
  tunnels_->request_copy(group, {voter->name, voter->address}, [this, needed, leader](int fd, const std::string& error) {
    if (fd < 0) {
      spdlog::warn("replication: no copy of the store: {}", error);
      fetching_ = false;
      return;
    }
    run_copy([this, fd, needed, leader] {
      uint64_t index = 0;
      auto staged = services::staged_path(settings_.data_dir);
      auto why = services::receive_store_copy(fd, staged, index);
      ::close(fd);
      if (why.empty() && index < needed)
        why = "it holds batches up to " + std::to_string(index) + ", not " + std::to_string(needed);
      if (why.empty()) {
        spdlog::warn("replication: staged a copy of member {}'s store from {} (batches up to {}); starting again "
                     "to install it",
                     settings_.member, leader, index);
        copy_staged_ = true;
      } else {
        spdlog::error("replication: the copy of the store from {} failed: {}", leader, why);
        std::error_code ec;
        std::filesystem::remove_all(staged, ec);
      }
      fetching_ = false;
    });
  });
}

void replication_stage::run_copy(std::function<void()> work) {
  std::lock_guard lock{copies_mutex_};
  for (auto it = copies_.begin(); it != copies_.end();) {
    if (!it->done->load()) {
      ++it;
      continue;
    }
    it->thread.join();
    it = copies_.erase(it);
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  copies_.push_back({std::thread{[work = std::move(work), done] {
                       work();
                       *done = true;
                     }},
                     done});
}

bool replication_stage::leading() const {
  return group_->status().leading;
}

bool replication_stage::wait_until_leading(std::chrono::milliseconds timeout) {
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto until = now() + timeout;
  bool standby = settings_.self != settings_.member;
  while (now() < until) {
    fetch_copy_if_needed();
    if (copy_staged_)
      return false;
    auto st = group_->status();
    if (!machine_->apply_failure().empty()) {  // it needs a copy (behind a snapshot), or an apply failed
      // Raft counts the snapshot this voter took as its own, so it may be
      // handed leadership; its store lacks what the snapshot stands for:
      // it must neither serve nor keep the group from a leader that can.
      if (st.leading)
        group_->hand_over();
      if (now() > next_note_) {
        spdlog::info("replication: {} cannot lead member {}'s store before it has a copy of it ({})", settings_.self,
                     settings_.member, machine_->apply_failure());
        next_note_ = now() + std::chrono::seconds(5);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (st.leading && (!standby || (st.term == led_term_ && now() - led_since_ >= settings_.election_timeout))) {
      std::promise<services::raft_commit> done;
      group_->barrier([&](const services::raft_commit& c) { done.set_value(c); });
      auto c = done.get_future().get();
      if (c.committed() && machine_->apply_failure().empty()) {
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
