#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "actors/models/alert_condition.hpp"
#include "actors/models/news2_score.hpp"

namespace healthtwin::actors {

/// What a twin query filters and orders on, per patient: kept current by
/// the writers of each part so that a query reads no twin and activates
/// none (only the page it returns).
struct patient_summary {
  // From the registry (the ingest sequencer, or a twin's registry reload).
  std::string ward;
  std::string bed;
  // From the patient twin; news2_known is false until it scored once.
  bool news2_known = false;
  uint8_t news2 = 0;
  bool news2_complete = false;
  models::news2_band news2_band = models::news2_band::low;
  // From the alert hub: open (active or acknowledged) alerts.
  models::priority alert_priority = models::priority::none;
  uint32_t open_alerts = 0;
};

/// A node's patient summaries by tenant, ordered by name. Thread-safe; each
/// update touches one part of one summary. Only the registry part adds a
/// patient (set_registry, seed); the others update known patients, so a
/// late update cannot bring back an erased one.
class twin_index {
public:
  void set_registry(const std::string& name, std::string ward, std::string bed);
  /// Adds a patient found in the store (registry, and NEWS2 from its
  /// snapshot) unless it is known already (a seed never overwrites fresher
  /// state).
  void seed(const std::string& name, patient_summary summary);
  void set_news2(const std::string& name, uint8_t total, bool complete, models::news2_band band);
  void set_alerts(const std::string& name, models::priority highest, uint32_t open);
  void remove(const std::string& name);
  /// Removes every patient `drop` names (those of shards handed to another
  /// member).
  void remove_if(const std::function<bool(const std::string& name)>& drop);

  /// Copies the summaries of one tenant's patients, ordered by name.
  std::vector<std::pair<std::string, patient_summary>> tenant(std::string_view tenant) const;

  /// One tenant's patients that `keep` accepts: how many (`matched`), and
  /// the first `limit` in `before` order of those `after` accepts, sorted —
  /// only they are copied (a query over a million patients copies a page,
  /// not a million summaries). Under the index's lock.
  struct selection {
    size_t matched = 0;
    std::vector<std::pair<std::string, patient_summary>> first;
  };
  using summary_test = std::function<bool(std::string_view name, const patient_summary&)>;
  using summary_order = std::function<bool(std::string_view, const patient_summary&, std::string_view,
                                           const patient_summary&)>;
  selection select(std::string_view tenant, const summary_test& keep, const summary_test& after,
                   const summary_order& before, size_t limit) const;

  /// Runs `seed_all` once per node run (the first query), under no lock.
  void seed_once(const std::function<void()>& seed_all);
  /// Whether seed_once() ran (or is running): patients of shards this node
  /// takes over later must then be seeded on their own.
  bool seeded() const noexcept { return seeded_flag_.load(); }

private:
  template <class F>
  void update(const std::string& name, F f);

  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::map<std::string, patient_summary, std::less<>>> by_tenant_;
  std::once_flag seeded_;
  std::atomic<bool> seeded_flag_{false};
};

}  // namespace healthtwin::actors
