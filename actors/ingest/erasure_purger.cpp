#include "actors/ingest/erasure_purger.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "storage/erasure.hpp"
#include "storage/errc.hpp"

namespace healthtwin::actors {

void erasure_purger::add(std::string patient) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!thread_.joinable())
    thread_ = std::thread([this] { run(); });
  queue_.push_back(std::move(patient));
  cv_.notify_one();
}

void erasure_purger::checkpointed(uint64_t position) {
  auto ready = std::stable_partition(waiting_.begin(), waiting_.end(),
                                     [&](auto& p) { return p.second > position; });
  for (auto i = ready; i != waiting_.end(); ++i)
    add(std::move(i->first));
  waiting_.erase(ready, waiting_.end());
}

void erasure_purger::finish() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable())
    thread_.join();
}

void erasure_purger::run() {
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty())
      return;
    auto patient = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (patient.empty()) {
      purge_all();
      lock.lock();
      continue;
    }
    // Logs name the patient only by pseudonym.
    auto r = storage::purge_erased(store_, patient);
    if (!r) {
      spdlog::error("erasure purge of patient {} failed: {}", store_.pseudonym(patient),
                    storage::describe(r.error()));
    } else {
      spdlog::info("erasure purge of patient {} done ({} alert events removed)",
                   store_.pseudonym(patient), r->alert_events);
      probe_.on_purged();
    }
    lock.lock();
  }
}

void erasure_purger::purge_all() {
  auto r = storage::purge_all_erased(store_);
  if (!r) {
    spdlog::error("erasure purge of owed erasures failed: {}", storage::describe(r.error()));
  } else {
    spdlog::info("erasure purge of owed erasures done ({} alert events removed)", r->alert_events);
    probe_.on_purged();
  }
}

}  // namespace healthtwin::actors
