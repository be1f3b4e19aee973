#include "actors/ingest/ingest_sequencer.hpp"

#include <future>
#include <thread>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/batch_dispatch.hpp"
#include "actors/ingest/checkpointer.hpp"
#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/erasure_purger.hpp"
#include "actors/ingest/group_commit.hpp"
#include "actors/ingest/ingest_probe.hpp"
#include "actors/ingest/job_queue.hpp"
#include "actors/ingest/log_replay.hpp"
#include "actors/ingest/registry_commit.hpp"
#include "actors/ingest/shard_fence.hpp"
#include "actors/ingest/shard_steps.hpp"
#include "actors/shard/shard.hpp"
#include "storage/erasure.hpp"
#include "storage/ingest_log.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

std::string to_string(ingest_errc x) {
  switch (x) {
    case ingest_errc::overloaded: return "overloaded";
    case ingest_errc::shutting_down: return "shutting_down";
    case ingest_errc::already_exists: return "already_exists";
    case ingest_errc::not_found: return "not_found";
    case ingest_errc::failed_precondition: return "failed_precondition";
    case ingest_errc::invalid_argument: return "invalid_argument";
    case ingest_errc::aborted: return "aborted";
    case ingest_errc::moving: return "moving";
  }
  return "unknown";
}

using clock = std::chrono::steady_clock;

struct ingest_sequencer::impl {
  impl(const ingest_settings& s, storage::store& st, std::vector<shard_actor> sh, ingest_flow& f,
       prometheus::Registry& metrics)
      : settings(s), store(st), log(st), registry(st), shards(std::move(sh)), flow(f), probe(metrics),
        queue(s.max_queued_readings), dir(st, registry),
        fence(static_cast<uint32_t>(shards.size()), s.owns_shard), dispatcher(shards, flow, s.owns_shard),
        commit(st, registry, dir, fence, probe, [this](const committed_batch_ptr& b) { dispatcher.dispatch(b); }),
        checkpoints({st, log, dir, fence, probe,
                     [this](uint32_t shard, const checkpoint_round_ptr& round) {
                       caf::anon_send(shards[shard], checkpoint_atom::value, round);
                     },
                     [this] { queue.wake_up(); }},
                    checkpoint_schedule{s.checkpoint_interval, s.checkpoint_every_readings, s.checkpoint_spread,
                                        shards.size()}),
        purger(st, probe),
        registry_changes(st, registry, dir, fence, shards, s.index, s.changes,
                         [this](const std::string& patient) { purge_after_checkpoint(patient); }),
        steps(fence, dir, commit, checkpoints, shards) {}

  ingest_settings settings;
  storage::store& store;
  storage::ingest_log log;
  storage::registry registry;
  std::vector<shard_actor> shards;
  ingest_flow& flow;
  ingest_probe probe;
  job_queue queue;
  std::thread thread;

  device_directory dir;
  shard_fence fence;
  batch_dispatch dispatcher;
  group_commit commit;
  checkpointer checkpoints;
  erasure_purger purger;
  registry_commit registry_changes;
  shard_steps steps;

  // Writes the commit being assembled, then acknowledges and dispatches it.
  void flush() {
    commit.flush();
    probe.set_uncheckpointed(commit.accepted() - checkpoints.accepted_at_checkpoint());
  }

  // Purges the patient's name and values from the files once a checkpoint
  // covers everything committed so far; that checkpoint is asked for now,
  // so the log is truncated behind it soon.
  void purge_after_checkpoint(const std::string& patient) {
    purger.after_checkpoint(patient, commit.position());
    checkpoints.request_now();
  }

  // -- the loop ---------------------------------------------------------------------

  void process(std::vector<sequencer_job>& jobs) {
    for (size_t i = 0; i < jobs.size();) {
      if (auto* sj = std::get_if<shard_job>(&jobs[i])) {
        flush();
        steps.run(*sj);
        ++i;
        continue;
      }
      if (auto* ij = std::get_if<ingest_job>(&jobs[i])) {
        commit.add(*ij);
        ++i;
        continue;
      }
      if (auto* pj = std::get_if<input_job>(&jobs[i])) {
        commit.add(*pj);
        ++i;
        continue;
      }
      // Registry changes are ordered between commits: flush the readings
      // queued before them, then commit the run of registry commands.
      flush();
      auto& rj = std::get<registry_job>(jobs[i]);
      if (auto* reset = std::get_if<reset_device_sequence>(&rj.command)) {
        // A commit of its own: the device appears once in it, and readings
        // after it land in the next one.
        commit.add_reset(*reset, std::move(rj.done));
        flush();
        ++i;
        continue;
      }
      auto last = i;
      while (last < jobs.size() && std::holds_alternative<registry_job>(jobs[last]) &&
             !std::holds_alternative<reset_device_sequence>(std::get<registry_job>(jobs[last]).command))
        ++last;
      registry_changes.run(jobs, i, last);
      i = last;
    }
    flush();
  }

  void wait_for_twins(int64_t limit) {
    while (flow.pending.load(std::memory_order_relaxed) > limit)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    probe.set_pending(flow.pending.load(std::memory_order_relaxed));
  }

  void maybe_checkpoint() {
    checkpoints.advance(commit.accepted());
    evict_cold_devices();
    steps.run_waiting();
    if (purger.waiting() && checkpoints.idle())
      purger.checkpointed(checkpoints.checkpointed());
    if (checkpoints.due(commit.position(), commit.accepted() - checkpoints.accepted_at_checkpoint()))
      checkpoints.start(commit.position(), commit.accepted());
  }

  // Bounds the directory: entries of devices idle for directory_idle go
  // once a checkpoint stored their windows (docs/adr/0035). A few thousand
  // buckets every 100 ms: the loop turns once per group commit under load,
  // and the sweep must not ride on every one of them.
  void evict_cold_devices() {
    if (settings.directory_idle.count() == 0)
      return;
    auto now = clock::now();
    if (checkpoints.checkpointed() != checkpoint_seen) {
      checkpoint_seen = checkpoints.checkpointed();
      dir.checkpoint_written(commit.stamp(), now);
    }
    if (!checkpoints.idle() || now < next_eviction)
      return;
    next_eviction = now + std::chrono::milliseconds(100);
    auto evicted = dir.evict_cold(now, settings.directory_idle, 4096);
    probe.on_directory(dir.size(), evicted);
  }
  uint64_t checkpoint_seen = 0;
  clock::time_point next_eviction{};

  // Queues readings (bounded by max_queued_readings) or refuses them.
  void enqueue(std::vector<ingest_group>&& groups, size_t readings, ingest_sequencer::ingest_callback done,
               bool patient_parts) {
    ingest_job j{std::move(groups), std::move(done), {}, clock::now(), patient_parts};
    auto verdict = queue.push_readings(j, readings);
    if (verdict == job_queue::verdict::queued)
      return;
    bool stopping = verdict == job_queue::verdict::stopping;
    probe.on_refused(stopping ? "shutting_down" : "overloaded");
    j.done(ingest_result{caf::make_error(stopping ? ingest_errc::shutting_down : ingest_errc::overloaded), 0, {}, {}});
  }

  // Queues a job, or answers it shutting_down once stopping.
  template <class Job>
  void push(Job&& j) {
    if (!queue.push(j))
      refuse(j);
  }
  static void refuse(registry_job& j) { j.done(registry_result{caf::make_error(ingest_errc::shutting_down), {}, {}}); }
  static void refuse(input_job& j) { j.done(registry_result{caf::make_error(ingest_errc::shutting_down), {}, {}}); }
  static void refuse(shard_job& j) { j.done(caf::make_error(ingest_errc::shutting_down)); }

  void run_loop() {
    auto wake = [this] { return checkpoints.wants_turn(); };
    for (;;) {
      std::vector<sequencer_job> jobs;
      if (!queue.take(jobs, std::chrono::milliseconds(checkpoints.asking() ? 10 : 100), wake))
        break;
      if (!jobs.empty()) {
        wait_for_twins(settings.max_pending_work);
        process(jobs);
      }
      // At least every 100 ms, idle or not: the gauge must fall to 0 once
      // the twins applied everything (it was set only while waiting).
      probe.set_pending(flow.pending.load(std::memory_order_relaxed));
      maybe_checkpoint();
    }
  }
};

ingest_sequencer::ingest_sequencer(const ingest_settings& settings, storage::store& store,
                                   std::vector<shard_actor> shards, ingest_flow& flow,
                                   prometheus::Registry& metrics)
    : impl_(std::make_unique<impl>(settings, store, std::move(shards), flow, metrics)) {}

ingest_sequencer::~ingest_sequencer() {
  stop();
}

caf::error ingest_sequencer::recover() {
  auto& im = *impl_;
  auto cp = im.log.checkpoint();
  if (!cp)
    return cp.error();
  auto last = im.log.last_position();
  if (!last)
    return last.error();
  im.checkpoints.set_checkpointed(*cp);
  im.probe.on_checkpoint(*cp);
  auto t0 = clock::now();
  auto replayed = replay_log(im.log, *cp, im.dir, im.fence, im.dispatcher,
                             [&] { im.wait_for_twins(im.settings.max_pending_work); });
  if (!replayed)
    return replayed.error();
  im.commit.set_position(*last);
  im.probe.on_commit(*last, 0, 0);
  im.wait_for_twins(0);
  auto secs = std::chrono::duration<double>(clock::now() - t0).count();
  spdlog::info("recovery: replayed {} log records ({} readings) after checkpoint {} in {:.3f} s",
               replayed->records, replayed->readings, *cp, secs);
  // Erasures whose purge never ran (the node stopped hard first): their
  // names are gone, so one purge of everything erased runs after the next
  // checkpoint.
  auto owed = storage::purges_owed(im.store);
  if (!owed)
    return owed.error();
  if (*owed > 0) {
    spdlog::warn("recovery: {} erasure purge(s) owed; purging all erased data after the next checkpoint",
                 *owed);
    im.purger.after_checkpoint(std::string{}, im.commit.position());
  }
  return caf::none;
}

void ingest_sequencer::start() {
  impl_->thread = std::thread([this] { impl_->run_loop(); });
}

void ingest_sequencer::submit(std::vector<ingest_group>&& groups, size_t readings,
                              ingest_callback done) {
  impl_->enqueue(std::move(groups), readings, std::move(done), false);
}

void ingest_sequencer::submit_patient_parts(std::vector<ingest_group>&& groups, size_t readings,
                                            ingest_callback done) {
  impl_->enqueue(std::move(groups), readings, std::move(done), true);
}

void ingest_sequencer::submit(registry_command&& command, registry_callback done) {
  impl_->push(registry_job{std::move(command), std::move(done)});
}

void ingest_sequencer::submit(patient_input&& input, registry_callback done) {
  impl_->push(input_job{std::move(input), std::move(done), {}});
}

void ingest_sequencer::submit(shard_step&& step, std::function<void(caf::error)> done) {
  impl_->push(shard_job{std::move(step), std::move(done)});
}

caf::error ingest_sequencer::run(shard_step&& step, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<caf::error>>();
  auto future = promise->get_future();
  submit(std::move(step), [promise](caf::error e) { promise->set_value(std::move(e)); });
  if (future.wait_for(timeout) != std::future_status::ready)
    return caf::make_error(caf::sec::request_timeout);
  return future.get();
}

void ingest_sequencer::stop() {
  auto& im = *impl_;
  if (!im.queue.stop())
    return;
  if (!im.thread.joinable())
    return;  // never started: nothing to drain
  im.thread.join();
  im.wait_for_twins(0);
  // A final checkpoint makes the next start replay nothing.
  im.checkpoints.complete(im.commit.accepted());
  if (im.commit.position() > im.checkpoints.checkpointed()) {
    im.checkpoints.start(im.commit.position(), im.commit.accepted());
    im.checkpoints.complete(im.commit.accepted());
  }
  im.purger.checkpointed(im.checkpoints.checkpointed());
  im.purger.finish();
  // Hand-off steps still waiting: the node stops under them.
  im.steps.fail_waiting(caf::make_error(ingest_errc::shutting_down));
  spdlog::info("ingest stopped at log position {}, checkpoint {}", im.commit.position(),
               im.checkpoints.checkpointed());
}

uint64_t ingest_sequencer::last_position() const {
  return impl_->commit.position();
}

uint64_t ingest_sequencer::readings_accepted() const {
  return impl_->commit.accepted();
}

}  // namespace healthtwin::actors
