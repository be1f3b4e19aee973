#pragma once
// The directory of a standby replica (twinctl replica ...): complete copies
// of a node's data directory, the newest one ready to be promoted.
//
//   DIR/.lock             held by the one twinctl that works on DIR
//   DIR/copy-000042/      a data directory, as the node made it
//   DIR/copy-000042.json  what it is (copy_info): written last, so a copy
//                         without it is incomplete and removed
//   DIR/copy-000043.partial/   being received

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace healthtwin::twinctl {

/// What a complete copy is (its .json file).
struct copy_info {
  uint64_t number = 0;
  std::string node;          ///< the member that made it
  std::string source;        ///< the address it was read from
  std::string database_id;   ///< the node's database identity
  std::string node_key_id;   ///< fingerprint of the key that opens it ("none": plaintext)
  int64_t copy_time_ms = 0;  ///< when the node made it: the recovery point
  uint64_t files = 0;
  uint64_t bytes = 0;
};

/// An exclusive lock on DIR (flock of DIR/.lock), released on destruction.
class replica_lock {
public:
  /// Creates DIR if missing. `error` says why when not held (another
  /// twinctl works on DIR, or DIR cannot be made).
  replica_lock(const std::string& dir, std::string& error);
  ~replica_lock();
  replica_lock(const replica_lock&) = delete;
  replica_lock& operator=(const replica_lock&) = delete;
  bool held() const { return fd_ >= 0; }

private:
  int fd_ = -1;
};

/// The complete copies of DIR, oldest first (their .json files read).
std::vector<copy_info> complete_copies(const std::string& dir);

/// Removes what is not a complete copy (partial copies, copies without
/// their .json), then every complete copy but the newest `keep`.
void tidy_copies(const std::string& dir, size_t keep);

std::string copy_path(const std::string& dir, uint64_t number);

/// Table files of a copy (name -> size): what the next copy may link.
std::map<std::string, uint64_t> table_files(const std::string& copy_dir);

/// Writes DIR/copy-N.json (synced, then DIR synced): the copy is complete.
bool write_copy_info(const std::string& dir, const copy_info& info, std::string& error);

/// Flushes a file or directory to disk; false when it cannot.
bool sync_path(const std::string& path);

/// Time as RFC 3339 in UTC (protobuf's form: fractions only when not 0).
std::string rfc3339(int64_t ms);

}  // namespace healthtwin::twinctl
