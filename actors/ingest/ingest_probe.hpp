#pragma once

#include <array>
#include <string>
#include <string_view>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "actors/ingest/ingest_sequencer.hpp"

namespace healthtwin::actors {

/// The Prometheus label of a rejection reason.
std::string_view reason_label(rejection_reason r);

/// Prometheus instruments of the ingest path; labels carry no PHI.
class ingest_probe {
public:
  explicit ingest_probe(prometheus::Registry& reg)
      : accepted_(prometheus::BuildCounter()
                      .Name("healthtwin_ingest_readings_accepted_total")
                      .Help("Readings written to the ingest log")
                      .Register(reg)
                      .Add({})),
        rejected_(prometheus::BuildCounter()
                      .Name("healthtwin_ingest_readings_rejected_total")
                      .Help("Readings refused one by one, by reason")
                      .Register(reg)),
        refused_(prometheus::BuildCounter()
                     .Name("healthtwin_ingest_requests_refused_total")
                     .Help("Whole requests refused, by reason")
                     .Register(reg)),
        commits_(prometheus::BuildCounter()
                     .Name("healthtwin_ingest_commits_total")
                     .Help("Group commits to the ingest log")
                     .Register(reg)
                     .Add({})),
        commit_seconds_(prometheus::BuildHistogram()
                            .Name("healthtwin_ingest_commit_seconds")
                            .Help("Time to write one group commit (WAL included)")
                            .Register(reg)
                            .Add({}, prometheus::Histogram::BucketBoundaries{
                                         0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                         0.25, 1})),
        position_(prometheus::BuildGauge()
                      .Name("healthtwin_ingest_log_position")
                      .Help("Last committed ingest log position")
                      .Register(reg)
                      .Add({})),
        checkpoint_(prometheus::BuildGauge()
                        .Name("healthtwin_ingest_checkpoint_position")
                        .Help("Log position covered by twin snapshots (log truncated below)")
                        .Register(reg)
                        .Add({})),
        ack_seconds_(prometheus::BuildHistogram()
                         .Name("healthtwin_ingest_ack_seconds")
                         .Help("From a request entering the sequencer queue to its ack")
                         .Register(reg)
                         .Add({}, prometheus::Histogram::BucketBoundaries{
                                      0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1})),
        pending_(prometheus::BuildGauge()
                     .Name("healthtwin_ingest_pending_work")
                     .Help("Work handed to twins and not yet applied")
                     .Register(reg)
                     .Add({})),
        uncheckpointed_(prometheus::BuildGauge()
                            .Name("healthtwin_ingest_log_uncheckpointed_readings")
                            .Help("Readings in the ingest log after the last checkpoint "
                                  "(what a crash would replay)")
                            .Register(reg)
                            .Add({})),
        purged_(prometheus::BuildCounter()
                    .Name("healthtwin_erasure_purges_total")
                    .Help("Erased patients whose records were compacted out of the data files")
                    .Register(reg)
                    .Add({})),
        directory_entries_(prometheus::BuildGauge()
                               .Name("healthtwin_ingest_directory_entries")
                               .Help("Devices (and patient parts) the ingest sequencer holds in memory")
                               .Register(reg)
                               .Add({})),
        directory_evicted_(prometheus::BuildCounter()
                               .Name("healthtwin_ingest_directory_evictions_total")
                               .Help("Idle directory entries dropped (read again on next use)")
                               .Register(reg)
                               .Add({})) {
    for (uint8_t r = 1; r < rejection_reasons; ++r)
      rejected_by_reason_[r] =
          &rejected_.Add({{"reason", std::string{reason_label(static_cast<rejection_reason>(r))}}});
    for (auto r : {"overloaded", "shutting_down", "storage"})
      refused_by_reason_.emplace(r, &refused_.Add({{"reason", r}}));
  }

  void on_rejected(rejection_reason r) { rejected_by_reason_[static_cast<size_t>(r)]->Increment(); }
  void on_refused(const char* why) { refused_by_reason_.at(why)->Increment(); }
  void on_commit(uint64_t position, size_t readings, double seconds) {
    accepted_.Increment(static_cast<double>(readings));
    commits_.Increment();
    commit_seconds_.Observe(seconds);
    position_.Set(static_cast<double>(position));
  }
  void on_checkpoint(uint64_t position) { checkpoint_.Set(static_cast<double>(position)); }
  void on_acked(double seconds) { ack_seconds_.Observe(seconds); }
  void set_pending(int64_t n) { pending_.Set(static_cast<double>(n)); }
  void on_purged() { purged_.Increment(); }
  void set_uncheckpointed(uint64_t n) { uncheckpointed_.Set(static_cast<double>(n)); }
  void on_directory(size_t entries, size_t evicted) {
    directory_entries_.Set(static_cast<double>(entries));
    directory_evicted_.Increment(static_cast<double>(evicted));
  }

private:
  prometheus::Counter& accepted_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& refused_;
  prometheus::Counter& commits_;
  prometheus::Histogram& commit_seconds_;
  prometheus::Gauge& position_;
  prometheus::Gauge& checkpoint_;
  prometheus::Histogram& ack_seconds_;
  prometheus::Gauge& pending_;
  prometheus::Gauge& uncheckpointed_;
  prometheus::Counter& purged_;
  prometheus::Gauge& directory_entries_;
  prometheus::Counter& directory_evicted_;
  std::array<prometheus::Counter*, rejection_reasons> rejected_by_reason_{};
  std::unordered_map<std::string, prometheus::Counter*> refused_by_reason_;
};

}  // namespace healthtwin::actors
