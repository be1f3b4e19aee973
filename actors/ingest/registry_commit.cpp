#include "actors/ingest/registry_commit.hpp"

#include <caf/all.hpp>

#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/registry_rules.hpp"
#include "actors/ingest/shard_fence.hpp"

namespace healthtwin::actors {

registry_commit::registry_commit(storage::store& store, storage::registry& registry, device_directory& dir,
                                 shard_fence& fence, const std::vector<shard_actor>& shards, twin_index* index,
                                 const twin_changes* changes,
                                 std::function<void(const std::string& patient)> purge_later)
    : store_(store), registry_(registry), dir_(dir), fence_(fence), shards_(shards), index_(index), changes_(changes),
      purge_later_(std::move(purge_later)) {}

void registry_commit::run(std::vector<sequencer_job>& jobs, size_t first, size_t last) {
  registry_rules t{store_, registry_, [this](std::string_view name) { return fence_.closed(name); }};
  bool committed = false;
  std::vector<registry_result> results;
  results.reserve(last - first);
  for (auto i = first; i < last; ++i)
    results.push_back(t.run(std::get<registry_job>(jobs[i]).command));
  if (t.batch().count() > 0) {
    if (auto err = store_.write(t.batch(), true)) {
      for (auto& r : results)
        if (!r.error)
          r = registry_result{err, {}, {}};
    } else {
      for (auto& [name, d] : t.devices())
        if (auto* e = dir_.find(name)) {
          e->patient = d.patient;
          e->decommissioned = d.decommission_time_ms != 0;
        }
      // Queries see a created or moved patient as soon as the call returns.
      if (index_)
        for (auto& [name, p] : t.patients())
          index_->set_registry(name, p.ward, p.bed);
      for (auto& p : t.notify())
        caf::anon_send(shards_[fence_.shard_of(p)], registry_atom::value, p);  // its shard tells watchers
      if (changes_)
        for (auto& [name, d] : t.devices())
          changes_->touched(name);
      committed = true;
      for (auto& p : t.released())
        purge_later_(p);
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
void registry_commit::hand_over_erasure(const std::string& patient, ingest_sequencer::registry_callback done,
                                        registry_result result) {
  auto completion = std::make_shared<erase_completion>();
  completion->fn = [done = std::move(done), r = std::move(result)]() mutable { done(std::move(r)); };
  caf::anon_send(shards_[fence_.shard_of(patient)], erase_atom::value, twin_erasure{patient, std::move(completion)});
  purge_later_(patient);
}

}  // namespace healthtwin::actors
