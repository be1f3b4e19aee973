#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

namespace healthtwin::storage {

/// What a gateway (HL7) remembers of one inbound message: the sequence
/// numbers it gave the message's readings, a digest of its content, and
/// whether the node acknowledged them durably.
struct journal_record {
  /// Per device id: the first sequence number of its readings in the
  /// message (they are numbered consecutively from there, in message order).
  std::vector<std::pair<std::string, uint64_t>> first_sequence;
  std::string digest;  ///< of the message's content (resends must match)
  bool acked = false;  ///< the node stored the readings durably
  int64_t received_ms = 0;
};

/// A gateway's durable memory of the messages it took, in RocksDB: the
/// de-duplication key of each message (sender and message control id) to
/// its sequence numbers, so that a resend after a lost ACK or a gateway
/// crash goes to the node with the same numbers and is answered from the
/// device's window (DUPLICATE) instead of stored twice; and each device's
/// next sequence number. A device's numbering starts at the wall clock in
/// ms the first time it is seen here, so a gateway whose journal is lost
/// still numbers above what it sent before. No patient data is kept.
/// Thread-safe.
class message_journal {
public:
  static caf::expected<std::unique_ptr<message_journal>> open(const std::filesystem::path& dir);
  ~message_journal();

  std::optional<journal_record> find(std::string_view key);

  /// Numbers `counts` readings per device (in order) from each device's
  /// counter and records `key` with them, not yet acknowledged; synced to
  /// disk before it returns.
  caf::expected<journal_record> assign(std::string_view key, std::string digest,
                                       const std::vector<std::pair<std::string, uint32_t>>& counts,
                                       int64_t now_ms);

  /// Records that the node acknowledged `key`'s readings (not synced: a
  /// lost mark only means a resend goes to the node again).
  caf::error mark_acked(std::string_view key);

  /// Forgets messages received before `ms`; returns how many.
  size_t forget_before(int64_t ms);

private:
  struct impl;
  explicit message_journal(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  std::mutex mtx_;
};

}  // namespace healthtwin::storage
