#include "actors/ingest/ingest_sequencer.hpp"

#include <array>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/batch_dispatch.hpp"
#include "actors/ingest/checkpoint_schedule.hpp"
#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/erasure_purger.hpp"
#include "actors/ingest/ingest_probe.hpp"
#include "actors/ingest/log_codec.hpp"
#include "actors/ingest/registry_rules.hpp"
#include "actors/models/sequence_window.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "actors/shard/shard.hpp"
#include "actors/twin/patient_settings_record.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/ingest_log.hpp"
#include "storage/key_codec.hpp"
#include "storage/store.hpp"
#include "storage/erasure.hpp"
#include "storage/twin_table.hpp"

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

namespace {

using clock = std::chrono::steady_clock;

struct ingest_job {
  std::vector<ingest_group> groups;
  ingest_sequencer::ingest_callback done;
  ingest_result result;
  std::chrono::steady_clock::time_point queued;
  bool patient_parts = false;  ///< submit_patient_parts: groups name their patient
};

struct registry_job {
  registry_command command;
  ingest_sequencer::registry_callback done;
};

struct input_job {
  patient_input input;
  ingest_sequencer::registry_callback done;
  registry_result result;
};

struct shard_job {
  shard_step step;
  std::function<void(caf::error)> done;
};

// Acknowledging a reset_device_sequence once its log entry is durable.
struct reset_ack {
  ingest_sequencer::registry_callback done;
  registry_result result;
};

using job = std::variant<ingest_job, registry_job, input_job, shard_job>;

/// A checkpoint: the twins snapshot (running), then a helper thread writes
/// the sequence windows and the new checkpoint position (writing), then the
/// sequencer takes the result (written or failed). Neither step runs on the
/// sequencer's thread, which goes on committing and acking meanwhile.
enum class checkpoint_phase : int { idle, running, snapshotted, writing, written, failed };

}  // namespace

struct ingest_sequencer::impl {
  impl(const ingest_settings& s, storage::store& st, std::vector<caf::actor> sh, ingest_flow& f,
       prometheus::Registry& metrics)
      : settings(s), store(st), log(st), registry(st), shards(std::move(sh)), flow(f),
        probe(metrics), dir(st, registry), dispatcher(shards, flow, s.owns_shard), fenced(shards.size(), false),
        schedule(s.checkpoint_interval, s.checkpoint_every_readings, s.checkpoint_spread, shards.size()),
        purger(st, probe) {}

  ingest_settings settings;
  storage::store& store;
  storage::ingest_log log;
  storage::registry registry;
  std::vector<caf::actor> shards;
  ingest_flow& flow;
  ingest_probe probe;

  std::mutex mtx;
  std::condition_variable cv;
  std::vector<job> queue;
  size_t queued_readings = 0;
  bool stopping = false;
  std::thread thread;

  std::atomic<uint64_t> position{0};
  std::atomic<uint64_t> accepted{0};
  device_directory dir;

  // The commit being assembled (sequencer thread only).
  std::shared_ptr<committed_batch> batch;
  uint64_t commit_stamp = 0;
  std::vector<std::pair<directory_entry*, models::sequence_window>> undo;
  std::vector<ingest_job*> commit_jobs;
  std::vector<input_job*> commit_inputs;
  std::vector<reset_ack> commit_resets;
  batch_dispatch dispatcher;
  // Devices of this commit whose duplicates go to their (local) patient
  // again, and their patient-only entry in it.
  std::unordered_map<const directory_entry*, uint32_t> redelivered;

  // Shard hand-offs (shard_step).
  std::vector<bool> fenced;
  // A hand-off's checkpoint of a few shards in progress: its shards, and
  // whom to tell when it is written (empty: the checkpoint in progress, if
  // any, is the node's).
  std::vector<uint32_t> partial_shards;
  std::function<void(caf::error)> partial_done;
  // A hand-off's checkpoint waits until the checkpoint in progress ended
  // (one at a time; so no checkpoint after its flip holds a window of its
  // shards).
  std::vector<shard_job> waiting_steps;

  // Checkpoints.
  std::atomic<checkpoint_phase> phase{checkpoint_phase::idle};
  uint64_t checkpoint_target = 0;
  uint64_t checkpointed = 0;
  // Readings committed (since start) up to the target / the last checkpoint.
  uint64_t accepted_at_target = 0;
  uint64_t accepted_at_checkpoint = 0;
  checkpoint_schedule schedule;
  clock::time_point checkpoint_snapshotted;
  // The windows changed up to the checkpoint in progress, copied when it
  // started; written with it by the helper thread.
  std::vector<window_copy> checkpoint_windows;
  // Declared after what its task uses: destroying it waits for the task.
  std::future<caf::error> checkpoint_write;
  // Shards not yet asked to snapshot (see ask_shards).
  checkpoint_round_ptr checkpoint_in_progress;
  size_t shards_asked = 0;

  // Erasures waiting for a checkpoint at or after their log position (the
  // log holding the patient's readings is then truncated), then purged.
  std::vector<std::pair<std::string, uint64_t>> purges;
  erasure_purger purger;

  void hand_over_purges() {
    auto ready = std::stable_partition(purges.begin(), purges.end(),
                                       [&](auto& p) { return p.second > checkpointed; });
    for (auto i = ready; i != purges.end(); ++i)
      purger.add(std::move(i->first));
    purges.erase(ready, purges.end());
  }

  bool owns(uint32_t shard) const { return !settings.owns_shard || settings.owns_shard(shard); }
  uint32_t shard_of(std::string_view name) const {
    return models::shard_of(name, static_cast<uint32_t>(shards.size()));
  }
  // Whether work for `shard` may commit here: this node owns it and it is
  // not being handed over.
  bool open(uint32_t shard) const { return !fenced[shard] && owns(shard); }
  // A registry command or clinician input touching `name`'s shard while it
  // cannot take writes: `moving` (the caller retries; another member may
  // own it by then).
  caf::error closed(std::string_view name) const {
    auto s = shard_of(name);
    if (open(s))
      return caf::none;
    return caf::make_error(ingest_errc::moving,
                           "shard " + std::to_string(s) +
                               (fenced[s] ? " is being handed to another member"
                                          : " belongs to another member now"));
  }

  // A checkpoint failed: its windows are written with the next one.
  void restore_dirty_windows() {
    dir.restore_dirty(checkpoint_windows);
    checkpoint_windows.clear();
  }

  // The helper thread's part: the windows in batches of 1,000, then the
  // checkpoint position, fsynced with them (the log behind it is
  // range-deleted). One batch of all windows held RocksDB's write queue,
  // and with it the ingest log's commits, for 100 ms and more; windows
  // written ahead of the position are newer than it and merge with a
  // replay of the log tail. Windows of shards handed over since are left
  // out (their copy is dropped). A window a replay left unread is merged with the stored one here (only
  // checkpoints write windows, so the stored one cannot change meanwhile).
  caf::error write_checkpoint() {
    storage::write_batch wb{store};
    for (auto& [name, replayed, partial, superseded] : checkpoint_windows) {
      auto shard = storage::key_codec::window_shard(name, store.shards());
      if (!owns(shard))
        continue;
      auto window = replayed;
      if (partial && !superseded) {
        if (auto err = dir.load_window(name, window))
          return err;
        window.merge(replayed);
      }
      internal::SequenceWindowState w;
      w.set_highest(window.highest());
      for (auto bits : window.seen_bits())
        w.add_seen(bits);
      wb.put(storage::column::twins, storage::key_codec::window_key(shard, name),
             w.SerializeAsString());
      if (wb.count() == 1'000) {
        if (auto err = store.write(wb, false))
          return err;
        wb.clear();
      }
    }
    if (!partial_shards.empty())  // a hand-off's checkpoint leaves the log as it is
      return store.write(wb, true);
    storage::ingest_log::advance_checkpoint(wb, checkpoint_target);
    if (auto err = store.write(wb, true))
      return err;
    // The records behind the checkpoint are deleted; their disk comes back
    // now instead of whenever a compaction reaches them (tens of MB per
    // checkpoint under load). A failure here costs disk, not data.
    if (auto err = log.reclaim(checkpoint_target))
      spdlog::warn("reclaiming the ingest log behind checkpoint {} failed: {}", checkpoint_target,
                   storage::describe(err));
    return caf::none;
  }

  // -- commits -----------------------------------------------------------------

  void begin_commit() {
    batch = std::make_shared<committed_batch>();
    ++commit_stamp;
    redelivered.clear();
  }

  void reject(ingest_job& j, const ingest_group& g, const ingest_reading& r, rejection_reason why,
              std::string_view field, std::string description) {
    j.result.rejections.push_back(reading_rejection{
        r.index, reading_field(g.group, field, r.index - g.first_index), why, std::move(description)});
    probe.on_rejected(why);
  }

  // Refuses a group of readings whose device's (or patient part's) shard,
  // or whose local patient's, cannot take writes now (a hand-off):
  // UNAVAILABLE, to be resent.
  bool refused_moving(ingest_job& j, const ingest_group& g, uint32_t shard) {
    if (open(shard))
      return false;
    auto why = "shard " + std::to_string(shard) +
               (fenced[shard] ? " is being handed to another member" : " belongs to another member now") +
               "; resend with the same sequence numbers";
    for (auto& r : g.readings)
      reject(j, g, r, rejection_reason::unavailable, {}, why);
    return true;
  }

  void add_ingest(ingest_job& j) {
    // Look every device (or patient part) up first, so a registry read
    // error fails the request before any of its readings touched a window.
    std::vector<directory_entry*> entries;
    std::vector<bool> refused(j.groups.size(), false);
    entries.reserve(j.groups.size());
    for (size_t gi = 0; gi < j.groups.size(); ++gi) {
      auto& g = j.groups[gi];
      if (settings.owns_shard && !open(shard_of(j.patient_parts ? g.patient : g.device))) {
        refused[gi] = true;
        entries.push_back(nullptr);
        continue;
      }
      auto e = j.patient_parts ? lookup_part_of_patient(g) : dir.lookup(g.device);
      if (!e) {
        j.result.error = e.error();
        commit_jobs.push_back(&j);
        return;
      }
      entries.push_back(*e);
    }
    for (size_t gi = 0; gi < j.groups.size(); ++gi) {
      auto& g = j.groups[gi];
      auto* e = entries[gi];
      if (refused[gi]) {
        refused_moving(j, g, shard_of(j.patient_parts ? g.patient : g.device));
        continue;
      }
      // A local patient whose shard is being handed over cannot take them.
      if (e && !j.patient_parts && !e->patient.empty() && settings.owns_shard &&
          owns(shard_of(e->patient)) && refused_moving(j, g, shard_of(e->patient)))
        continue;
      // In a cluster, the part for a patient another member owns goes there.
      patient_part* part = nullptr;
      if (e && !j.patient_parts && !e->patient.empty() && !owns(shard_of(e->patient))) {
        part = &j.result.patient_parts.emplace_back();
        part->patient = e->patient;
        part->device = g.device;
        part->group = g.group;
        part->first_index = g.first_index;
      }
      // In a cluster, a duplicate of a device whose patient is this node's
      // goes to the patient twin again (see ingest_settings::owns_shard).
      bool redeliver = settings.owns_shard && e && !j.patient_parts && !part && !e->patient.empty();
      for (auto& r : g.readings) {
        if (!e) {
          if (j.patient_parts)
            reject(j, g, r, rejection_reason::unknown_device, {}, "no such patient");
          else
            reject(j, g, r, rejection_reason::unknown_device, {}, "no such device: register it first");
          continue;
        }
        if (e->decommissioned) {
          reject(j, g, r, rejection_reason::decommissioned, {}, "the device was decommissioned");
          continue;
        }
        if (!j.patient_parts && !models::device_measures(e->type, r.metric)) {
          reject(j, g, r, rejection_reason::metric_not_supported, "metric",
                 std::string{models::to_string(r.metric)} + " is not measured by this device type");
          continue;
        }
        if (e->commit_stamp != commit_stamp) {
          undo.emplace_back(e, e->window);
          e->commit_stamp = commit_stamp;
          e->entry = no_entry;
          dir.mark_dirty(
              j.patient_parts ? storage::key_codec::part_window_name(g.patient, g.device) : g.device, e);
        }
        bool fresh = false;
        switch (e->window.admit(r.sequence)) {
          case models::sequence_window::verdict::accept:
            fresh = true;
            break;
          case models::sequence_window::verdict::duplicate:
            reject(j, g, r, rejection_reason::duplicate, "sequence",
                   "already accepted (safe to treat as acknowledged)");
            break;
          case models::sequence_window::verdict::too_old:
            // A part the device's owner found new is new (its numbers were
            // reset there): its window, not the part's, decides.
            if (j.patient_parts && !r.resent) {
              fresh = true;
              break;
            }
            reject(j, g, r, rejection_reason::outside_window, "sequence",
                   "more than 256 below the highest sequence accepted from this device");
            continue;
          case models::sequence_window::verdict::invalid:
            reject(j, g, r, rejection_reason::invalid_sequence, "sequence", "must be >= 1");
            continue;
        }
        reading logged{r.sequence, r.time_ms, r.metric, r.value, r.quality};
        if (part) {  // a duplicate too: its earlier carrying may have failed
          part->readings.push_back(logged);
          part->indexes.push_back(r.index);
          part->fresh.push_back(fresh);
        }
        if (!fresh) {
          if (redeliver) {
            auto [it, added] = redelivered.try_emplace(e, static_cast<uint32_t>(batch->entries.size()));
            if (added) {
              auto& again = batch->entries.emplace_back();
              again.device = g.device;
              again.patient = e->patient;
              again.patient_only = true;
            }
            batch->entries[it->second].readings.push_back(logged);
          }
          continue;
        }
        if (e->entry == no_entry) {
          e->entry = static_cast<uint32_t>(batch->entries.size());
          auto& added = batch->entries.emplace_back();
          added.device = g.device;
          added.patient = e->patient;
          added.patient_only = j.patient_parts;
          added.readings.reserve(g.readings.size());
        }
        batch->entries[e->entry].readings.push_back(logged);
        ++j.result.accepted;
      }
      if (part && part->readings.empty())
        j.result.patient_parts.pop_back();
    }
    commit_jobs.push_back(&j);
  }

  // A patient part's window, or nullptr when its patient is not registered
  // here (or was erased).
  caf::expected<directory_entry*> lookup_part_of_patient(const ingest_group& g) {
    auto known = dir.find(storage::key_codec::part_window_name(g.patient, g.device)) != nullptr;
    if (!known) {
      auto rec = registry.get_patient(g.patient);
      if (!rec)
        return rec.error();
      if (!*rec)
        return static_cast<directory_entry*>(nullptr);
    }
    return dir.lookup_part(g.patient, g.device);
  }

  // Writes the commit being assembled, then acknowledges and dispatches it.
  void flush() {
    if (!batch->entries.empty()) {
      auto n = 0u;
      for (auto& e : batch->entries)
        n += static_cast<unsigned>(e.readings.size());
      batch->position = position.load() + 1;
      batch->receive_time_ms = models::wall_clock_ms();
      storage::write_batch wb{store};
      storage::ingest_log::append(wb, batch->position, encode_log_record(*batch));
      auto t0 = clock::now();
      if (auto err = store.write(wb, true)) {
        // Nothing was written: forget the windows' changes and fail every
        // request of the commit as a whole; callers retry.
        for (auto it = undo.rbegin(); it != undo.rend(); ++it)
          it->first->window = it->second;
        spdlog::error("ingest: group commit failed: {}", storage::describe(err));
        probe.on_refused("storage");
        for (auto* j : commit_jobs)
          j->result = ingest_result{err, 0, {}, {}};
        for (auto* j : commit_inputs)
          j->result.error = err;
        for (auto& r : commit_resets)
          r.result.error = err;
      } else {
        position.store(batch->position);
        accepted.fetch_add(n, std::memory_order_relaxed);
        probe.set_uncheckpointed(accepted.load(std::memory_order_relaxed) - accepted_at_checkpoint);
        probe.on_commit(batch->position, n,
                        std::chrono::duration<double>(clock::now() - t0).count());
        dispatcher.dispatch(batch);
      }
    }
    auto now = clock::now();
    for (auto* j : commit_jobs) {
      probe.on_acked(std::chrono::duration<double>(now - j->queued).count());
      j->done(std::move(j->result));
    }
    for (auto* j : commit_inputs)
      j->done(std::move(j->result));
    for (auto& r : commit_resets)
      r.done(std::move(r.result));
    commit_jobs.clear();
    commit_inputs.clear();
    commit_resets.clear();
    undo.clear();
    begin_commit();
  }

  // -- registry ------------------------------------------------------------------

  /// Consecutive registry commands commit together: one write batch, one
  /// fsync (registry_rules). Directory updates and twin notifications wait
  /// for the write. Runs registry jobs [first, last) as one commit.
  void run_registry(std::vector<job>& jobs, size_t first, size_t last) {
    registry_rules t{store, registry, [this](std::string_view name) { return closed(name); }};
    bool committed = false;
    std::vector<registry_result> results;
    for (auto i = first; i < last; ++i)
      results.push_back(t.run(std::get<registry_job>(jobs[i]).command));
    if (t.batch().count() > 0) {
      if (auto err = store.write(t.batch(), true)) {
        for (auto& r : results)
          if (!r.error)
            r = registry_result{err, {}, {}};
      } else {
        for (auto& [name, d] : t.devices())
          if (auto* e = dir.find(name)) {
            e->patient = d.patient;
            e->decommissioned = d.decommission_time_ms != 0;
          }
        // Queries see a created or moved patient as soon as the call returns.
        if (settings.index)
          for (auto& [name, p] : t.patients())
            settings.index->set_registry(name, p.ward, p.bed);
        for (auto& p : t.notify()) {
          auto s = models::shard_of(p, static_cast<uint32_t>(shards.size()));
          caf::anon_send(shards[s], registry_atom::value, p);
        }
        committed = true;
        for (auto& p : t.released())
          purge_after_checkpoint(p);
      }
    }
    for (auto i = first; i < last; ++i) {
      auto& rj = std::get<registry_job>(jobs[i]);
      auto& r = results[i - first];
      if (auto* e = std::get_if<erase_patient>(&rj.command); e && committed && !r.error)
        hand_over_erasure(e->patient, std::move(rj.done), std::move(r));
      else
        rj.done(std::move(r));
    }
  }

  // After every batch already dispatched to the shard (one sender, FIFO)
  // the twin applies them, then deletes its records and tells the alert
  // hub; the caller hears back once the hub let go of the patient.
  void hand_over_erasure(const std::string& patient, registry_callback done,
                         registry_result result) {
    auto completion = std::make_shared<erase_completion>();
    completion->fn = [done = std::move(done), r = std::move(result)]() mutable {
      done(std::move(r));
    };
    auto s = models::shard_of(patient, static_cast<uint32_t>(shards.size()));
    caf::anon_send(shards[s], erase_atom::value, patient, std::move(completion));
    purge_after_checkpoint(patient);
  }

  // Purges the patient's name and values from the files once a checkpoint
  // covers everything committed so far; that checkpoint is asked for now,
  // so the log is truncated behind it soon.
  void purge_after_checkpoint(const std::string& patient) {
    purges.push_back({patient, position.load()});
    schedule.request_now();
  }

  // A clinician's input joins the commit being assembled as an entry of
  // its patient (after checking the patient exists).
  void add_input(input_job& j) {
    if (auto err = closed(j.input.patient)) {
      j.result.error = std::move(err);
      commit_inputs.push_back(&j);
      return;
    }
    auto rec = registry.get_patient(j.input.patient);
    if (!rec) {
      j.result.error = rec.error();
    } else if (!*rec) {
      j.result.error = caf::make_error(ingest_errc::not_found, std::string{"patient"});
    } else {
      device_entry e;
      e.device = std::move(j.input.recorded_by);
      e.patient = std::move(j.input.patient);
      e.readings = std::move(j.input.observations);
      e.clinician = true;
      e.settings = std::move(j.input.settings);
      batch->entries.push_back(std::move(e));
      j.result.patient = std::move(**rec);
    }
    commit_inputs.push_back(&j);
  }

  // A device's sequence numbers forgotten: an entry of its own in the commit
  // being assembled (empty before and flushed after, see process).
  void add_reset(const reset_device_sequence& c, registry_callback done) {
    reset_ack ack{std::move(done), {}};
    auto e = closed(c.device) ? caf::expected<directory_entry*>{closed(c.device)} : dir.lookup(c.device);
    if (!e) {
      ack.result.error = e.error();
    } else if (!*e) {
      ack.result.error = caf::make_error(ingest_errc::not_found, std::string{"device"});
    } else if ((*e)->decommissioned) {
      ack.result.error = caf::make_error(ingest_errc::failed_precondition,
                                         std::string{"the device was decommissioned"});
    } else if (auto rec = registry.get_device(c.device); !rec || !*rec) {
      ack.result.error = rec ? caf::make_error(ingest_errc::not_found, std::string{"device"}) : rec.error();
    } else {
      auto* entry = *e;
      undo.emplace_back(entry, entry->window);
      entry->commit_stamp = commit_stamp;
      entry->entry = no_entry;
      entry->window = models::sequence_window{};
      dir.mark_dirty(c.device, entry);
      auto& reset = batch->entries.emplace_back();
      reset.device = c.device;
      reset.patient = entry->patient;
      reset.sequence_reset = true;
      ack.result.device = std::move(**rec);
    }
    commit_resets.push_back(std::move(ack));
  }

  // -- shard hand-offs (shard_step) ---------------------------------------------

  // Runs after everything queued before it committed (process flushes).
  void run_step(shard_job& j) {
    switch (j.step.what) {
      case shard_step::kind::fence:
        for (auto s : j.step.shards)
          fenced[s] = true;
        j.done(caf::none);
        return;
      case shard_step::kind::unfence:
        for (auto s : j.step.shards)
          fenced[s] = false;
        j.done(caf::none);
        return;
      case shard_step::kind::checkpoint:
        if (phase != checkpoint_phase::idle) {
          waiting_steps.push_back(std::move(j));
          ask_shards(true);  // hurry the checkpoint in progress: a hand-off waits
          return;
        }
        start_checkpoint(j.step.shards, std::move(j.done));
        return;
      case shard_step::kind::release:
      case shard_step::kind::adopt:
        // A checkpoint in progress holds copies of the windows it writes,
        // none of these shards' (fenced and checkpointed before, or not
        // this node's).
        forget_shards(j.step);
        j.done(caf::none);
        return;
    }
  }

  // True for each shard of `of`, by shard number.
  std::vector<bool> shard_mask(const std::vector<uint32_t>& of) const {
    std::vector<bool> in(shards.size(), false);
    for (auto s : of)
      in[s] = true;
    return in;
  }

  // Forgets the windows of devices and patient parts in `step.shards` and
  // has their twins stopped. Between commits (`undo` and `redelivered`
  // point into the directory during one).
  void forget_shards(const shard_step& step) {
    auto in = shard_mask(step.shards);
    dir.forget_shards(in);
    for (auto s : step.shards) {
      caf::anon_send(shards[s], forget_atom::value);
      if (step.what == shard_step::kind::release)
        fenced[s] = false;  // not owned any more: refused as another member's
    }
  }

  void run_waiting_steps() {
    if (phase != checkpoint_phase::idle || waiting_steps.empty())
      return;
    auto steps = std::move(waiting_steps);
    waiting_steps.clear();
    for (auto& j : steps)
      run_step(j);
  }

  // A hand-off's checkpoint ended (written, or failed with `failure`).
  void end_partial_checkpoint(caf::error failure) {
    partial_shards.clear();
    auto done = std::move(partial_done);
    partial_done = nullptr;
    if (done)
      done(std::move(failure));
  }

  void process(std::vector<job>& jobs) {
    for (size_t i = 0; i < jobs.size();) {
      if (auto* sj = std::get_if<shard_job>(&jobs[i])) {
        flush();
        run_step(*sj);
        ++i;
        continue;
      }
      if (auto* ij = std::get_if<ingest_job>(&jobs[i])) {
        add_ingest(*ij);
        ++i;
        continue;
      }
      if (auto* pj = std::get_if<input_job>(&jobs[i])) {
        add_input(*pj);
        ++i;
        continue;
      }
      // Registry changes are ordered between commits: flush the readings
      // queued before them, then commit the run of registry commands.
      flush();
      if (auto* reset = std::get_if<reset_device_sequence>(&std::get<registry_job>(jobs[i]).command)) {
        // A commit of its own: the device appears once in it, and readings
        // after it land in the next one.
        add_reset(*reset, std::move(std::get<registry_job>(jobs[i]).done));
        flush();
        ++i;
        continue;
      }
      auto last = i;
      while (last < jobs.size() && std::holds_alternative<registry_job>(jobs[last]) &&
             !std::holds_alternative<reset_device_sequence>(std::get<registry_job>(jobs[last]).command))
        ++last;
      run_registry(jobs, i, last);
      i = last;
    }
    flush();
  }

  // -- backpressure and checkpoints -----------------------------------------------

  void wait_for_twins(int64_t limit) {
    while (flow.pending.load(std::memory_order_relaxed) > limit)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    probe.set_pending(flow.pending.load(std::memory_order_relaxed));
  }

  // Starts the node's checkpoint, or with `only` a hand-off's of those
  // shards (their twins snapshotted and windows written at once, the log
  // checkpoint left where it is; `done` hears how it ended).
  void start_checkpoint(const std::vector<uint32_t>& only = {},
                        std::function<void(caf::error)> done = nullptr) {
    auto round = std::make_shared<checkpoint_round>();
    round->position = checkpoint_target = position.load();
    accepted_at_target = accepted.load();
    round->on_done = [this](bool ok) {
      phase = ok ? checkpoint_phase::snapshotted : checkpoint_phase::failed;
      cv.notify_all();
    };
    phase = checkpoint_phase::running;
    schedule.started();
    if (!only.empty()) {
      partial_shards = only;
      partial_done = std::move(done);
      auto in = shard_mask(only);
      checkpoint_windows = dir.take_dirty(&in);
      round->shards_left = static_cast<uint32_t>(only.size());
      for (auto s : only)
        caf::anon_send(shards[s], checkpoint_atom::value, round);
      return;
    }
    // Windows as of the target: a replay of the log tail merges into them.
    checkpoint_windows = dir.take_dirty();
    round->shards_left = static_cast<uint32_t>(shards.size());
    checkpoint_in_progress = std::move(round);
    shards_asked = 0;
    ask_shards();
  }

  // Asks the shards whose turn has come within checkpoint_spread (all of
  // them when `all`, at stop).
  void ask_shards(bool all = false) {
    if (!checkpoint_in_progress)
      return;
    auto due = schedule.shards_due(all);
    for (; shards_asked < due; ++shards_asked)
      caf::anon_send(shards[shards_asked], checkpoint_atom::value, checkpoint_in_progress);
    if (shards_asked == shards.size())
      checkpoint_in_progress = nullptr;
  }

  // Moves the checkpoint in progress on when its current step is done.
  void finish_checkpoint() {
    ask_shards();
    auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    switch (phase.load()) {
      case checkpoint_phase::failed:
        spdlog::warn("checkpoint at log position {} failed (a snapshot write failed); retrying later",
                     checkpoint_target);
        restore_dirty_windows();
        phase = checkpoint_phase::idle;
        if (!partial_shards.empty())
          end_partial_checkpoint(caf::make_error(storage::errc::io_error,
                                                 std::string{"a twin snapshot write failed"}));
        break;
      case checkpoint_phase::snapshotted:
        checkpoint_snapshotted = clock::now();
        phase = checkpoint_phase::writing;
        checkpoint_write = std::async(std::launch::async, [this] {
          auto err = write_checkpoint();
          phase = checkpoint_phase::written;
          cv.notify_all();
          return err;
        });
        break;
      case checkpoint_phase::written:
        if (auto err = checkpoint_write.get()) {
          spdlog::warn("writing checkpoint failed: {}", storage::describe(err));
          restore_dirty_windows();
          phase = checkpoint_phase::idle;
          if (!partial_shards.empty())
            end_partial_checkpoint(err);
        } else if (!partial_shards.empty()) {
          spdlog::info("hand-off checkpoint of shards at log position {}: twins snapshotted in "
                       "{:.1f} ms, {} sequence windows written in {:.1f} ms",
                       checkpoint_target, ms(checkpoint_snapshotted - schedule.started_at()),
                       checkpoint_windows.size(), ms(clock::now() - checkpoint_snapshotted));
          checkpoint_windows.clear();
          phase = checkpoint_phase::idle;
          end_partial_checkpoint(caf::none);
        } else {
          spdlog::info("checkpoint at log position {}: twins snapshotted in {:.1f} ms, {} sequence "
                       "windows written in {:.1f} ms",
                       checkpoint_target, ms(checkpoint_snapshotted - schedule.started_at()),
                       checkpoint_windows.size(), ms(clock::now() - checkpoint_snapshotted));
          checkpoint_windows.clear();
          checkpointed = checkpoint_target;
          accepted_at_checkpoint = accepted_at_target;
          probe.on_checkpoint(checkpointed);
          probe.set_uncheckpointed(accepted.load() - accepted_at_checkpoint);
          phase = checkpoint_phase::idle;
        }
        break;
      default:
        break;
    }
  }

  // Drives the checkpoint in progress to its end (at stop).
  void complete_checkpoint() {
    ask_shards(true);
    for (;;) {
      finish_checkpoint();
      auto p = phase.load();
      if (p == checkpoint_phase::idle)
        return;
      if (p == checkpoint_phase::running || p == checkpoint_phase::writing)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void maybe_checkpoint() {
    finish_checkpoint();
    run_waiting_steps();
    if (!purges.empty() && phase == checkpoint_phase::idle)
      hand_over_purges();
    bool due = schedule.due(accepted.load() - accepted_at_checkpoint);
    if (phase == checkpoint_phase::idle && due && position.load() > checkpointed) {
      schedule.scheduled();
      start_checkpoint();
    }
  }

  // Queues a job, or hands it to `refuse` once stopping. False when refused.
  template <class Job, class Refuse>
  bool push(Job&& j, Refuse refuse) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (!stopping) {
        queue.emplace_back(std::forward<Job>(j));
        cv.notify_one();
        return true;
      }
    }
    refuse(j);
    return false;
  }

  // Queues readings (bounded by max_queued_readings) or refuses them.
  void enqueue(std::vector<ingest_group>&& groups, size_t readings,
               ingest_sequencer::ingest_callback done, bool patient_parts) {
    bool refused_stopping;
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (!stopping && queued_readings + readings <= settings.max_queued_readings) {
        queued_readings += readings;
        queue.emplace_back(ingest_job{std::move(groups), std::move(done), {}, clock::now(), patient_parts});
        cv.notify_one();
        return;
      }
      refused_stopping = stopping;
    }
    probe.on_refused(refused_stopping ? "shutting_down" : "overloaded");
    done(ingest_result{caf::make_error(refused_stopping ? ingest_errc::shutting_down
                                                        : ingest_errc::overloaded),
                       0, {}, {}});
  }

  void run_loop() {
    begin_commit();
    for (;;) {
      std::vector<job> jobs;
      {
        std::unique_lock<std::mutex> lock{mtx};
        auto wait = std::chrono::milliseconds(checkpoint_in_progress ? 10 : 100);
        cv.wait_for(lock, wait, [&] {
          auto p = phase.load();
          return !queue.empty() || stopping || p == checkpoint_phase::snapshotted ||
                 p == checkpoint_phase::written || p == checkpoint_phase::failed;
        });
        if (queue.empty() && stopping)
          break;
        jobs.swap(queue);
        queued_readings = 0;
      }
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
                                   std::vector<caf::actor> shards, ingest_flow& flow,
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
  im.checkpointed = *cp;
  im.probe.on_checkpoint(*cp);
  caf::error failure;
  uint64_t records = 0, readings = 0;
  auto t0 = clock::now();
  internal::LogRecord rec;  // parsed into again and again: its arrays are reused
  auto err = im.log.replay(*cp + 1, [&](uint64_t pos, std::string_view bytes) {
    auto b = std::make_shared<committed_batch>();
    if ((failure = decode_log_record(pos, bytes, rec, *b)))
      return false;
    for (auto& e : b->entries) {
      // Windows of shards this node handed over since are not rebuilt (its
      // log still names their devices and patients until a checkpoint).
      bool owned = im.owns(im.shard_of(e.patient_only ? e.patient : e.device));
      auto entry = e.clinician || !owned ? caf::expected<directory_entry*>{nullptr}
                   : e.patient_only      ? im.dir.lookup_part(e.patient, e.device)
                                         : caf::expected<directory_entry*>{im.dir.lookup_for_replay(e.device)};
      if (!entry) {
        failure = entry.error();
        return false;
      }
      if (!*entry) {
        readings += e.readings.size();
        continue;
      }
      im.dir.mark_dirty(e.patient_only ? storage::key_codec::part_window_name(e.patient, e.device) : e.device,
                           *entry);
      if (e.sequence_reset) {  // what came before is forgotten, stored or replayed
        (*entry)->window = models::sequence_window{};
        (*entry)->stored_superseded = !(*entry)->loaded;
      }
      for (auto& r : e.readings)
        (*entry)->window.admit(r.sequence);  // union with the stored window
      readings += e.readings.size();
    }
    im.dispatcher.dispatch_replayed(b);
    ++records;
    im.wait_for_twins(im.settings.max_pending_work);
    return true;
  });
  if (err)
    return err;
  if (failure)
    return failure;
  im.dispatcher.send_replayed();
  im.position = *last;
  im.probe.on_commit(*last, 0, 0);
  im.wait_for_twins(0);
  auto secs = std::chrono::duration<double>(clock::now() - t0).count();
  spdlog::info("recovery: replayed {} log records ({} readings) after checkpoint {} in {:.3f} s",
               records, readings, *cp, secs);
  // Erasures whose purge never ran (the node stopped hard first): their
  // names are gone, so one purge of everything erased runs after the next
  // checkpoint.
  auto owed = storage::purges_owed(im.store);
  if (!owed)
    return owed.error();
  if (*owed > 0) {
    spdlog::warn("recovery: {} erasure purge(s) owed; purging all erased data after the next checkpoint",
                 *owed);
    im.purges.push_back({std::string{}, im.position.load()});
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
  impl_->push(registry_job{std::move(command), std::move(done)}, [](registry_job& j) {
    registry_result r;
    r.error = caf::make_error(ingest_errc::shutting_down);
    j.done(std::move(r));
  });
}

void ingest_sequencer::submit(patient_input&& input, registry_callback done) {
  impl_->push(input_job{std::move(input), std::move(done), {}}, [](input_job& j) {
    registry_result r;
    r.error = caf::make_error(ingest_errc::shutting_down);
    j.done(std::move(r));
  });
}

void ingest_sequencer::submit(shard_step&& step, std::function<void(caf::error)> done) {
  impl_->push(shard_job{std::move(step), std::move(done)},
              [](shard_job& j) { j.done(caf::make_error(ingest_errc::shutting_down)); });
}

void ingest_sequencer::stop() {
  auto& im = *impl_;
  {
    std::lock_guard<std::mutex> guard{im.mtx};
    if (im.stopping)
      return;
    im.stopping = true;
  }
  im.cv.notify_all();
  if (!im.thread.joinable())
    return;  // never started: nothing to drain
  im.thread.join();
  im.wait_for_twins(0);
  // A final checkpoint makes the next start replay nothing.
  im.complete_checkpoint();
  if (im.position.load() > im.checkpointed) {
    im.start_checkpoint();
    im.complete_checkpoint();
  }
  im.hand_over_purges();
  im.purger.finish();
  // Hand-off steps still waiting: the node stops under them.
  for (auto& j : im.waiting_steps)
    j.done(caf::make_error(ingest_errc::shutting_down));
  im.waiting_steps.clear();
  spdlog::info("ingest stopped at log position {}, checkpoint {}", im.position.load(),
               im.checkpointed);
}

uint64_t ingest_sequencer::last_position() const {
  return impl_->position.load();
}

uint64_t ingest_sequencer::readings_accepted() const {
  return impl_->accepted.load();
}

}  // namespace healthtwin::actors
