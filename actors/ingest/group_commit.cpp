#include "actors/ingest/group_commit.hpp"

#include <spdlog/spdlog.h>

#include "actors/ingest/log_codec.hpp"
#include "actors/models/wall_clock.hpp"
#include "storage/ingest_log.hpp"
#include "storage/key_codec.hpp"
#include "storage/registry.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

using clock = std::chrono::steady_clock;

group_commit::group_commit(storage::store& store, storage::registry& registry, device_directory& dir,
                           const shard_fence& fence, ingest_probe& probe, dispatch_fn dispatch)
    : store_(store), registry_(registry), dir_(dir), fence_(fence), probe_(probe), dispatch_(std::move(dispatch)) {
  begin();
}

void group_commit::begin() {
  batch_ = std::make_shared<committed_batch>();
  ++stamp_;
  redelivered_.clear();
}

void group_commit::reject(ingest_job& j, const ingest_group& g, const ingest_reading& r, rejection_reason why,
                          std::string_view field, std::string description) {
  j.result.rejections.push_back(reading_rejection{
      r.index, reading_field(g.group, field, r.index - g.first_index), why, std::move(description)});
  probe_.on_rejected(why);
}

// Refuses a group of readings whose device's (or patient part's) shard, or
// whose local patient's, cannot take writes now (a hand-off): UNAVAILABLE,
// to be resent.
bool group_commit::refused_moving(ingest_job& j, const ingest_group& g, uint32_t shard) {
  if (fence_.open(shard))
    return false;
  auto why = fence_.why_closed(shard) + "; resend with the same sequence numbers";
  for (auto& r : g.readings)
    reject(j, g, r, rejection_reason::unavailable, {}, why);
  return true;
}

void group_commit::add(ingest_job& j) {
  // Look every device (or patient part) up first, so a registry read error
  // fails the request before any of its readings touched a window.
  auto shard_of_group = [&](const ingest_group& g) { return fence_.shard_of(j.patient_parts ? g.patient : g.device); };
  std::vector<directory_entry*> entries;
  std::vector<bool> refused(j.groups.size(), false);
  entries.reserve(j.groups.size());
  for (size_t gi = 0; gi < j.groups.size(); ++gi) {
    auto& g = j.groups[gi];
    if (fence_.clustered() && !fence_.open(shard_of_group(g))) {
      refused[gi] = true;
      entries.push_back(nullptr);
      continue;
    }
    auto e = j.patient_parts ? lookup_part_of_patient(g) : dir_.lookup(g.device);
    if (!e) {
      j.result.error = e.error();
      jobs_.push_back(&j);
      return;
    }
    entries.push_back(*e);
  }
  for (size_t gi = 0; gi < j.groups.size(); ++gi) {
    auto& g = j.groups[gi];
    auto* e = entries[gi];
    if (refused[gi]) {
      refused_moving(j, g, shard_of_group(g));
      continue;
    }
    // A local patient whose shard is being handed over cannot take them.
    if (e && !j.patient_parts && !e->patient.empty() && fence_.clustered() && fence_.owns(fence_.shard_of(e->patient)) &&
        refused_moving(j, g, fence_.shard_of(e->patient)))
      continue;
    add_readings(j, g, e);
  }
  jobs_.push_back(&j);
}

void group_commit::touch(directory_entry* e, const std::string& window_name) {
  undo_.emplace_back(e, e->window);
  e->commit_stamp = stamp_;
  e->entry = no_entry;
  dir_.mark_dirty(window_name, e);
}

void group_commit::add_readings(ingest_job& j, const ingest_group& g, directory_entry* e) {
  // In a cluster, the part for a patient another member owns goes there.
  patient_part* part = nullptr;
  if (e && !j.patient_parts && !e->patient.empty() && !fence_.owns(fence_.shard_of(e->patient))) {
    part = &j.result.patient_parts.emplace_back();
    part->patient = e->patient;
    part->device = g.device;
    part->group = g.group;
    part->first_index = g.first_index;
  }
  // In a cluster, a duplicate of a device whose patient is this node's goes
  // to the patient twin again (see ingest_settings::owns_shard).
  bool redeliver = fence_.clustered() && e && !j.patient_parts && !part && !e->patient.empty();
  for (auto& r : g.readings) {
    if (!e) {
      reject(j, g, r, rejection_reason::unknown_device, {},
             j.patient_parts ? "no such patient" : "no such device: register it first");
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
    if (e->commit_stamp != stamp_)
      touch(e, j.patient_parts ? storage::key_codec::part_window_name(g.patient, g.device) : g.device);
    bool fresh = false;
    switch (e->window.admit(r.sequence)) {
      case models::sequence_window::verdict::accept:
        fresh = true;
        break;
      case models::sequence_window::verdict::duplicate:
        reject(j, g, r, rejection_reason::duplicate, "sequence", "already accepted (safe to treat as acknowledged)");
        break;
      case models::sequence_window::verdict::too_old:
        // A part the device's owner found new is new (its numbers were reset
        // there): its window, not the part's, decides.
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
    reading logged{r.sequence, r.time_ms, r.value, r.metric, r.quality};
    if (part) {  // a duplicate too: its earlier carrying may have failed
      part->readings.push_back(logged);
      part->indexes.push_back(r.index);
      part->fresh.push_back(fresh);
    }
    if (!fresh) {
      if (redeliver) {
        auto [it, added] = redelivered_.try_emplace(e, static_cast<uint32_t>(batch_->entries.size()));
        if (added) {
          auto& again = batch_->entries.emplace_back();
          again.device = g.device;
          again.patient = e->patient;
          again.patient_only = true;
        }
        batch_->entries[it->second].readings.push_back(logged);
      }
      continue;
    }
    if (e->entry == no_entry) {
      e->entry = static_cast<uint32_t>(batch_->entries.size());
      auto& added = batch_->entries.emplace_back();
      added.device = g.device;
      added.patient = e->patient;
      added.patient_only = j.patient_parts;
      added.readings.reserve(g.readings.size());
    }
    batch_->entries[e->entry].readings.push_back(logged);
    ++j.result.accepted;
  }
  if (part && part->readings.empty())
    j.result.patient_parts.pop_back();
}

// A patient part's window, or nullptr when its patient is not registered
// here (or was erased).
caf::expected<directory_entry*> group_commit::lookup_part_of_patient(const ingest_group& g) {
  auto known = dir_.find(storage::key_codec::part_window_name(g.patient, g.device)) != nullptr;
  if (!known) {
    auto rec = registry_.get_patient(g.patient);
    if (!rec)
      return rec.error();
    if (!*rec)
      return static_cast<directory_entry*>(nullptr);
  }
  return dir_.lookup_part(g.patient, g.device);
}

void group_commit::add(input_job& j) {
  if (auto err = fence_.closed(j.input.patient)) {
    j.result.error = std::move(err);
    inputs_.push_back(&j);
    return;
  }
  auto rec = registry_.get_patient(j.input.patient);
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
    batch_->entries.push_back(std::move(e));
    j.result.patient = std::move(**rec);
  }
  inputs_.push_back(&j);
}

void group_commit::add_reset(const reset_device_sequence& c, ingest_sequencer::registry_callback done) {
  reset_ack ack{std::move(done), {}};
  auto closed = fence_.closed(c.device);
  auto e = closed ? caf::expected<directory_entry*>{std::move(closed)} : dir_.lookup(c.device);
  if (!e) {
    ack.result.error = e.error();
  } else if (!*e) {
    ack.result.error = caf::make_error(ingest_errc::not_found, std::string{"device"});
  } else if ((*e)->decommissioned) {
    ack.result.error = caf::make_error(ingest_errc::failed_precondition, std::string{"the device was decommissioned"});
  } else if (auto rec = registry_.get_device(c.device); !rec || !*rec) {
    ack.result.error = rec ? caf::make_error(ingest_errc::not_found, std::string{"device"}) : rec.error();
  } else {
    auto* entry = *e;
    touch(entry, c.device);
    entry->window = models::sequence_window{};
    auto& reset = batch_->entries.emplace_back();
    reset.device = c.device;
    reset.patient = entry->patient;
    reset.sequence_reset = true;
    ack.result.device = std::move(**rec);
  }
  resets_.push_back(std::move(ack));
}

void group_commit::flush() {
  if (!batch_->entries.empty()) {
    auto n = 0u;
    for (auto& e : batch_->entries)
      n += static_cast<unsigned>(e.readings.size());
    batch_->position = position_.load() + 1;
    batch_->receive_time_ms = models::wall_clock_ms();
    storage::write_batch wb{store_};
    storage::ingest_log::append(wb, batch_->position, encode_log_record(*batch_));
    auto t0 = clock::now();
    if (auto err = store_.write(wb, true)) {
      // Nothing was written: forget the windows' changes and fail every
      // request of the commit as a whole; callers retry.
      for (auto it = undo_.rbegin(); it != undo_.rend(); ++it)
        it->first->window = it->second;
      spdlog::error("ingest: group commit failed: {}", storage::describe(err));
      probe_.on_refused("storage");
      for (auto* j : jobs_)
        j->result = ingest_result{err, 0, {}, {}};
      for (auto* j : inputs_)
        j->result.error = err;
      for (auto& r : resets_)
        r.result.error = err;
    } else {
      position_.store(batch_->position);
      accepted_.fetch_add(n, std::memory_order_relaxed);
      probe_.on_commit(batch_->position, n, std::chrono::duration<double>(clock::now() - t0).count());
      dispatch_(batch_);
    }
  }
  auto now = clock::now();
  for (auto* j : jobs_) {
    probe_.on_acked(std::chrono::duration<double>(now - j->queued).count());
    j->done(std::move(j->result));
  }
  for (auto* j : inputs_)
    j->done(std::move(j->result));
  for (auto& r : resets_)
    r.done(std::move(r.result));
  jobs_.clear();
  inputs_.clear();
  resets_.clear();
  undo_.clear();
  begin();
}

}  // namespace healthtwin::actors
