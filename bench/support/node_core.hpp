#pragma once

// The actor core of a node in-process (store, actor system, alert hub,
// shards, ingest sequencer), as services/node builds it, for the benchmarks
// that drive it without the network; and a bounded submitter of sequencer
// requests.

#include <caf/all.hpp>
#include <prometheus/registry.h>

#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/shard/shard.hpp"
#include "actors/twin/twin.hpp"
#include "storage/errc.hpp"
#include "storage/store.hpp"

namespace healthtwin::bench {

/// Opens (or creates) a store without fsync (it changes nothing measured); exits on failure.
inline std::unique_ptr<storage::store> open_store(const std::string& dir) {
  storage::store_settings ss;
  ss.data_dir = dir;
  ss.sync_wal = false;
  auto s = storage::store::open(ss);
  if (!s) {
    std::cerr << "cannot open " << dir << ": " << storage::describe(s.error()) << "\n";
    std::exit(1);
  }
  return std::move(*s);
}

struct node_core {
  /// `clock`: the twins' node clock (none: the wall clock).
  explicit node_core(storage::store& store, actors::twin_settings twins = {},
                     actors::ingest_settings ingest = default_ingest(),
                     std::function<int64_t()> clock = {}) {
    cfg.set("scheduler.policy", caf::atom("sharing"));
    cfg.set("scheduler.max-threads", 2);
    cfg.set("scheduler.max-throughput", 300);
    sys = std::make_unique<caf::actor_system>(cfg);
    ctx.store = &store;
    ctx.flow = &flow;
    ctx.counters = &counters;
    ctx.settings = twins;
    ctx.clock = std::move(clock);
    ctx.index = ingest.index;
    ctx.alert_hub = actors::spawn_alert_hub(*sys, {}, store, metrics);
    shards = actors::spawn_shards(*sys, store.shards(), ctx, metrics);
    seq = std::make_unique<actors::ingest_sequencer>(ingest, store, shards, flow, metrics);
  }

  static actors::ingest_settings default_ingest() {
    actors::ingest_settings is;
    is.checkpoint_interval = std::chrono::seconds(30);
    return is;
  }

  ~node_core() {
    seq->stop();
    seq.reset();
    for (auto& s : shards)
      caf::anon_send(s, actors::shutdown_atom::value);
    caf::anon_send_exit(ctx.alert_hub, caf::exit_reason::user_shutdown);
    sys.reset();
  }

  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  prometheus::Registry metrics;
  actors::ingest_flow flow;
  actors::twin_counters counters;
  actors::twin_context ctx;
  std::vector<actors::shard_actor> shards;
  std::unique_ptr<actors::ingest_sequencer> seq;
};

/// Keeps at most a given number of sequencer requests outstanding and
/// counts the failed ones.
class submitter {
public:
  explicit submitter(actors::ingest_sequencer& seq) : seq_(seq) {}

  void registry(actors::registry_command cmd, uint64_t window = 20'000) {
    enter(window);
    seq_.submit(std::move(cmd), [this](actors::registry_result&& r) { done(r.error); });
  }

  void ingest(std::vector<actors::ingest_group> groups, size_t readings, uint64_t window = 64) {
    enter(window);
    seq_.submit(std::move(groups), readings, [this](actors::ingest_result&& r) { done(r.error); });
  }

  /// Waits until fewer than `n` are outstanding (1: all done).
  void wait_below(uint64_t n) {
    std::unique_lock<std::mutex> lock{mtx_};
    cv_.wait(lock, [&] { return outstanding_ < n; });
  }

  uint64_t failed() const {
    std::lock_guard<std::mutex> g{mtx_};
    return failed_;
  }

private:
  void enter(uint64_t window) {
    wait_below(window);
    std::lock_guard<std::mutex> g{mtx_};
    ++outstanding_;
  }
  void done(const caf::error& err) {
    std::lock_guard<std::mutex> g{mtx_};
    if (err)
      ++failed_;
    --outstanding_;
    cv_.notify_all();
  }

  actors::ingest_sequencer& seq_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  uint64_t outstanding_ = 0, failed_ = 0;
};

}  // namespace healthtwin::bench
