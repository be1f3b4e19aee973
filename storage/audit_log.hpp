#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <caf/expected.hpp>

#include "storage/store.hpp"

namespace healthtwin::storage {

/// One audited action: who did what to which resource, when, and how it
/// ended. No patient data beyond the resource name, and that names patients
/// and devices by pseudonym once written (audit_log::stored_resource).
struct audit_entry {
  std::string principal;  ///< authenticated caller ("anonymous" before auth)
  std::string resource;   ///< e.g. tenants/h1/patients/p1
  std::string action;     ///< e.g. "AlertService/AcknowledgeAlert"
  std::string outcome;    ///< "ok" or the status code name
  int64_t time_ms = 0;    ///< node clock
};

/// What verification found.
struct audit_verdict {
  uint64_t entries = 0;                   ///< links checked
  std::optional<uint64_t> first_broken;  ///< sequence of the first bad link
  std::string reason;                    ///< why it is bad
};

/// The append-only, hash-chained audit log (column family `audit`): entry n
/// stores SHA-256(hash of entry n-1 || entry n) — altering, removing or
/// reordering any stored entry breaks the chain from there on, and verify()
/// names the first broken link. (Cutting entries off the end is only
/// visible against an anchored head hash: see docs/adr/0007.)
///
/// Appends are group-committed: one writer thread takes every entry queued
/// meanwhile, chains them in arrival order and writes them with one synced
/// write, so thousands of audited calls per second share a few fsyncs.
/// Thread-safe.
class audit_log {
public:
  /// Called once the entry is durable (no error) or could not be written.
  /// Runs on the writer thread: must not block.
  using done_callback = std::function<void(const caf::error&)>;

  explicit audit_log(store& s) : store_(s) {}
  /// Writes what is queued, then stops the writer.
  ~audit_log();

  /// Loads the chain's head (last sequence and hash) and starts the writer.
  /// Call once.
  caf::error open();

  /// Appends an entry; durable when this returns (per store sync settings).
  caf::error append(const audit_entry& e);

  /// Queues an entry; `done` runs once it is durable or failed.
  void append_async(const audit_entry& e, done_callback done);

  /// Sequence of the last entry written (0: empty).
  uint64_t head() const;

  /// Synced writes so far (each holds one or more entries).
  uint64_t commits() const;

  /// How `resource` is stored: a patient or device id in it
  /// (`tenants/T/patients/P/...`, `tenants/T/devices/D/...`) becomes `~`
  /// and its keyed pseudonym, so the log keeps no identifier of a patient
  /// or of the devices that measure one, erased or not, nor of a twin homed
  /// in another region that a call here was about; whoever holds the node
  /// key can still find a twin's entries.
  static std::string stored_resource(store& s, std::string_view resource);

  /// Walks the whole chain.
  static caf::expected<audit_verdict> verify(store& s);

  /// Calls `fn(sequence, entry)` for each stored entry in order, until it
  /// returns false (entries that do not parse are skipped: verify names them).
  static caf::error read(store& s, const std::function<bool(uint64_t, const audit_entry&)>& fn);

private:
  struct queued {
    audit_entry entry;
    done_callback done;
  };
  void run_writer();
  caf::error write_group(std::deque<queued>& group);

  store& store_;
  mutable std::mutex mtx_;
  std::condition_variable wake_;
  std::deque<queued> queue_;
  bool stopping_ = false;
  std::thread writer_;
  // Owned by the writer thread once it runs (read under mtx_ by head()).
  uint64_t last_ = 0;
  std::array<uint8_t, 32> last_hash_{};
  uint64_t commits_ = 0;
};

}  // namespace healthtwin::storage
