#pragma once

#include <array>

#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include <caf/expected.hpp>

#include "storage/errc.hpp"

namespace healthtwin::storage {

/// How the node's RocksDB is opened. Read once at start; none of these can
/// change at run time.
struct store_settings {
  /// Directory of the node's database; created if missing. Required.
  std::string data_dir;
  /// Number of virtual shards. Fixed for the life of a data directory: a
  /// directory written with another count is refused (errc::incompatible).
  /// 0: whatever an existing directory was created with (tools). Default 1024.
  uint32_t shards = 1024;
  /// fsync the write-ahead log on every commit (group commit amortises it).
  /// false: an acknowledged write survives a crash of the process (kill -9)
  /// but not of the machine. Default true.
  bool sync_wal = true;
  /// Shared block cache for all column families, bytes. Default 64 MiB.
  size_t block_cache_bytes = size_t{64} << 20;
  /// Memtable size of the ingest log column family, bytes. Default 64 MiB.
  size_t log_write_buffer_bytes = size_t{64} << 20;
  /// Key file of the node key (64 hex digits, mode 0600). When set, every
  /// RocksDB file is encrypted with AES-256 (storage/file_encryption.hpp);
  /// a directory is either encrypted from its creation or never, and is
  /// refused when opened with another key or without one. Default: empty
  /// (plaintext, for development).
  std::string encryption_key_file;
  /// Without a node key only: a key file (as encryption_key_file) holding
  /// the secret that patients' pseudonyms are keyed with. The members of a
  /// cluster must share one (their erasure markers name patients by
  /// pseudonym). Unset: a new data directory creates a random secret of its
  /// own at its first open and keeps it. With a node key the secret is
  /// derived from it. Default: empty.
  std::string pseudonym_key_file;
  /// Keep RocksDB's statistics tickers (counters only: no histograms or
  /// timers, whose clock reads cost on every operation); exported as
  /// healthtwin_storage_events_total. Default true.
  bool statistics = true;
};

class write_batch;
enum class column : uint8_t;

/// Where a store's writes go when the store is one replica of a Raft group
/// (docs/adr/0038): every batch is proposed to the group and applied, in
/// the group's order, by apply_replicated on every replica — this one too.
class write_replicator {
public:
  virtual ~write_replicator() = default;
  /// Returns once `batch` (a write batch's bytes) is committed — durable on
  /// a majority — and applied here, or with errc::no_quorum when it was not
  /// (it may still be committed later: resent batches must be harmless, as
  /// the ingest log's sequence windows make them).
  virtual caf::error replicate(std::string_view batch) = 0;
};

/// The node's RocksDB: one database, one column family per purpose (log,
/// registry, twins, series, alerts, audit, keys). Thread-safe; owned by the
/// composition root and shared by reference with the tables below.
class store {
public:
  /// Opens (or creates) the database; refuses a directory written with
  /// another shard count or hash, and reports damaged files by name.
  static caf::expected<std::unique_ptr<store>> open(const store_settings& settings);

  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  const store_settings& settings() const noexcept;
  uint32_t shards() const noexcept { return settings().shards; }

  /// Applies a batch atomically. With `sync` the WAL is fsynced first when
  /// settings().sync_wal is on.
  caf::error write(write_batch& batch, bool sync);

  /// From now on write() hands every batch to `r` (nullptr: straight to
  /// RocksDB again). Set before the store is shared.
  void replicate_through(write_replicator* r) noexcept;

  /// Applies a batch its Raft group committed at `index` (the group's state
  /// machine; one thread): its writes and the index, atomically, unsynced
  /// (the group's log holds it durably until sync_wal() before a snapshot).
  /// A batch at or below replicated_index() was applied before a restart
  /// and is skipped. errc::corruption when the bytes are not a batch.
  caf::error apply_replicated(uint64_t index, std::string_view batch);

  /// The index of the last replicated batch applied (0: none).
  uint64_t replicated_index() const noexcept;

  /// A key derived from the node key for one purpose (node_key::derive);
  /// nullopt in a plaintext directory.
  std::optional<std::array<uint8_t, 32>> derive_key(std::string_view label) const;

  /// Makes every write so far durable (fsyncs the WAL when
  /// settings().sync_wal is on). Other writers are not blocked meanwhile.
  caf::error sync_wal();

  /// Empty while writes work. After a write failed (an I/O error other
  /// than a full disk) the error, until a later write finds the database
  /// resumed; RocksDB cannot resume after a failed WAL write, so that one
  /// stays until the node restarts. /healthz reports it.
  std::string write_failure() const;

  /// Reads one value: nullopt when the key is absent.
  caf::expected<std::optional<std::string>> get(column c, std::string_view key);

  /// Visits keys in [begin, end) in order (end empty = to the end of the
  /// column family) until `fn` returns false.
  caf::error scan(column c, std::string_view begin, std::string_view end,
                  const std::function<bool(std::string_view key, std::string_view value)>& fn);

  /// The last key below `before` (empty = the whole column family), or
  /// nullopt when there is none.
  caf::expected<std::optional<std::string>> last_key(column c, std::string_view before = {});

  /// Flushes memtables and compacts a column family (tests, erasure).
  caf::error compact(column c);

  /// Flushes the memtable of `c` and compacts the keys in [begin, end) down
  /// to the last level, dropping deleted entries for good.
  caf::error compact_range(column c, std::string_view begin, std::string_view end);

  /// A consistent copy of the whole database in `dir` (which must not
  /// exist; its parent must): every column family flushed, then its files
  /// hard-linked (or copied across file systems) — a data directory a node
  /// opens as it is, with the same node key. Writes go on meanwhile. Its
  /// size in bytes and number of files.
  caf::expected<std::pair<uint64_t, uint32_t>> checkpoint(const std::string& dir);

  /// Flushes every column family's memtable (so no WAL file still holds
  /// deleted data) and compacts `c` fully.
  caf::error flush_all_and_compact(column c);

  /// Gives the disk back for [begin, end) of `c`, all of it deleted: drops
  /// the table files wholly inside it, then compacts what overlaps it (its
  /// range tombstone and the entries it covers go). Blocks for the
  /// compaction; call from a background thread. The ingest log's reclaim
  /// behind each checkpoint.
  caf::error reclaim(column c, std::string_view begin, std::string_view end);

  /// At a clean stop, after the last checkpoint: flushes every column
  /// family's memtable, so the write-ahead log files are deleted (nothing
  /// needs replaying), and compacts the ingest log, all of it behind the
  /// checkpoint, away. The directory is then about the size of its data.
  caf::error flush_at_stop();

  // -- per-patient data keys (storage/patient_keys.hpp) ----------------------

  /// Seals a patient's value under the patient's own data key (encrypted
  /// directories); returns it unchanged in a plaintext directory.
  /// errc::erased for an erased patient.
  caf::expected<std::string> seal(std::string_view patient, std::string_view plain);
  /// Adds a data key for a new patient to `batch` (with its registry
  /// record); seal() creates one itself for owners registered without.
  caf::error add_patient_key(write_batch& batch, std::string_view patient);
  /// Opens what seal() returned. errc::erased when the key was destroyed.
  caf::expected<std::string> unseal(std::string_view stored);
  /// get() of a sealed value, opened.
  caf::expected<std::optional<std::string>> get_unsealed(column c, std::string_view key);
  /// Destroys the patient's data key and marks the patient erased (synced;
  /// storage/erasure.hpp has the rest of an erasure).
  caf::error destroy_patient_key(std::string_view patient);
  /// Whether the patient was erased (a marker keyed by its pseudonym).
  bool patient_erased(std::string_view patient);
  /// A keyed hash naming the patient without revealing it (audit, logs).
  std::string pseudonym(std::string_view patient);
  /// The node key's public fingerprint (node_key::id()), "none" in a
  /// plaintext directory: members of a cluster compare it, since a shard's
  /// sealed values and wrapped keys move between them as they are.
  std::string node_key_id() const;
  /// The database's identity (RocksDB's, made when the directory was
  /// created; a copy keeps it): a restored or replaced directory has another.
  std::string database_id() const;
  /// A public fingerprint of the key patients' pseudonyms are keyed with
  /// (16 hex digits): members of a cluster compare it, since erasure
  /// markers name patients by pseudonym.
  std::string pseudonym_key_id() const;

  /// RocksDB's own statistics and properties, for diagnostics.
  std::string describe_stats() const;

  /// Memory RocksDB holds, bytes (all column families).
  struct memory_usage {
    uint64_t memtables = 0;
    uint64_t block_cache = 0;
    uint64_t table_readers = 0;
  };
  memory_usage memory() const;

  /// RocksDB's cheap properties (no statistics overhead), for metrics.
  struct column_stats {
    const char* name = "";  ///< column family
    uint64_t sst_bytes = 0;
    uint64_t live_data_bytes = 0;
    uint64_t estimated_keys = 0;
    uint64_t pending_compaction_bytes = 0;
  };
  struct db_stats {
    std::vector<column_stats> columns;
    uint64_t running_compactions = 0;
    uint64_t running_flushes = 0;
    uint64_t background_errors = 0;
    bool writes_stopped = false;
    uint64_t delayed_write_rate = 0;  ///< bytes/s while writes are slowed; 0: not slowed
  };
  db_stats stats() const;

  /// RocksDB tickers since open (empty when settings().statistics is off).
  struct ticker {
    const char* name;  ///< e.g. "block_cache_hit"
    uint64_t count;
  };
  std::vector<ticker> tickers() const;

  struct impl;
  impl& internals() noexcept { return *impl_; }

private:
  explicit store(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

/// The column families.
enum class column : uint8_t { meta, log, registry, twins, series, alerts, audit, keys };

/// A set of writes applied atomically by store::write. Not thread-safe.
class write_batch {
public:
  explicit write_batch(store& s);
  ~write_batch();
  write_batch(write_batch&&) noexcept;

  void put(column c, std::string_view key, std::string_view value);
  void erase(column c, std::string_view key);
  /// Deletes [begin, end) in one tombstone.
  void erase_range(column c, std::string_view begin, std::string_view end);
  size_t count() const noexcept;
  void clear();

  struct impl;
  impl& internals() noexcept { return *impl_; }

private:
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::storage
