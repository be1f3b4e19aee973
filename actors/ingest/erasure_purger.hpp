#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "actors/ingest/ingest_probe.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

/// Runs storage::purge_erased for erased patients on its own thread: the
/// compactions take seconds on a large store and must not hold up ingest.
/// An empty name stands for every erasure owed from before a restart
/// (storage::purge_all_erased).
///
/// An erasure is purged only once a checkpoint at or after its log
/// position was taken (the log holding the patient's readings is then
/// truncated): after_checkpoint() holds it until checkpointed() says so.
/// Those two run on the sequencer thread only.
class erasure_purger {
public:
  erasure_purger(storage::store& s, ingest_probe& p) : store_(s), probe_(p) {}
  ~erasure_purger() { finish(); }

  void add(std::string patient);

  /// Purges `patient` once a checkpoint at or after `position` was taken.
  void after_checkpoint(std::string patient, uint64_t position) {
    waiting_.emplace_back(std::move(patient), position);
  }
  /// A checkpoint at `position` was taken: the erasures it covers are
  /// purged now.
  void checkpointed(uint64_t position);
  bool waiting() const noexcept { return !waiting_.empty(); }

  /// Purges what is queued, then stops the thread.
  void finish();

private:
  void run();
  void purge_all();

  storage::store& store_;
  ingest_probe& probe_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::thread thread_;
  std::vector<std::pair<std::string, uint64_t>> waiting_;  // sequencer thread
};

}  // namespace healthtwin::actors
