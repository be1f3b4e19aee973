#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <caf/expected.hpp>

#include "storage/store.hpp"

namespace healthtwin::storage {

/// One audited action: who did what to which resource, when, and how it
/// ended. No patient data beyond the resource name.
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
/// Thread-safe: appends are serialised.
class audit_log {
public:
  explicit audit_log(store& s) : store_(s) {}

  /// Loads the chain's head (last sequence and hash). Call once.
  caf::error open();

  /// Appends an entry, durable when this returns (per store sync settings).
  caf::error append(const audit_entry& e);

  /// Sequence of the last entry (0: empty).
  uint64_t head() const;

  /// Walks the whole chain.
  static caf::expected<audit_verdict> verify(store& s);

private:
  store& store_;
  mutable std::mutex mtx_;
  uint64_t last_ = 0;
  std::array<uint8_t, 32> last_hash_{};
};

}  // namespace healthtwin::storage
