#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "actors/ingest/ingest_probe.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

/// Runs storage::purge_erased for erased patients on its own thread: the
/// compactions take seconds on a large store and must not hold up ingest.
/// An empty name stands for every erasure owed from before a restart
/// (storage::purge_all_erased).
class erasure_purger {
public:
  erasure_purger(storage::store& s, ingest_probe& p) : store_(s), probe_(p) {}
  ~erasure_purger() { finish(); }

  void add(std::string patient);

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
};

}  // namespace healthtwin::actors
