#pragma once

#include <chrono>
#include <functional>
#include <variant>
#include <vector>

#include "actors/ingest/ingest_sequencer.hpp"

namespace healthtwin::actors {

/// What callers queue for the ingest sequencer, in the order they queued
/// it. Each job's `done` is called exactly once, on the sequencer thread.

/// Readings of one ingest request (or of patient parts, see
/// ingest_sequencer::submit_patient_parts).
struct ingest_job {
  std::vector<ingest_group> groups;
  ingest_sequencer::ingest_callback done;
  ingest_result result;
  std::chrono::steady_clock::time_point queued;
  bool patient_parts = false;  ///< groups name their patient
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

using sequencer_job = std::variant<ingest_job, registry_job, input_job, shard_job>;

}  // namespace healthtwin::actors
