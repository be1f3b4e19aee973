#pragma once

#include <atomic>
#include <mutex>
#include <string>
// Private to storage/: the RocksDB handles behind store and write_batch.

#include <array>
#include <memory>
#include <optional>

#include <rocksdb/db.h>
#include <rocksdb/statistics.h>
#include <rocksdb/write_batch.h>

#include "storage/node_key.hpp"
#include "storage/patient_keys.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

inline constexpr size_t column_count = 8;

struct store::impl {
  store_settings settings;
  std::optional<node_key> key;        // set when encryption_key_file is
  node_key::bytes pseudonym_key{};    // patient_keys' pseudonym MAC key
  std::unique_ptr<rocksdb::Env> env;  // the encrypting Env; outlives db
  std::shared_ptr<rocksdb::Statistics> statistics;  // when settings.statistics
  std::unique_ptr<rocksdb::DB> db;
  std::array<rocksdb::ColumnFamilyHandle*, column_count> columns{};
  std::unique_ptr<patient_keys> patients;  // after db: destroyed first
  // After a failed write (other than a full disk, which RocksDB recovers
  // from by itself) the database refuses every write until resumed; the
  // next write tries to resume it, at most once per second.
  std::atomic<bool> write_failed{false};
  std::atomic<int64_t> next_resume_ms{0};
  std::mutex failure_mtx;
  std::string failure;  // the failed write's error, for /healthz
  // A replica of a Raft group: writes go through the group (store_replication.cpp).
  std::atomic<write_replicator*> replicator{nullptr};
  std::atomic<uint64_t> replicated_index{0};  // read at open

  rocksdb::ColumnFamilyHandle* cf(column c) const { return columns[static_cast<size_t>(c)]; }
  rocksdb::Status checked_write(const rocksdb::Status& st);
  void resume_after_failure();
  ~impl();
};

struct write_batch::impl {
  store::impl* owner;
  rocksdb::WriteBatch batch;
};

/// Reads the index of the last replicated batch applied (at open).
caf::error load_replicated_index(store::impl& im);

/// Converts a RocksDB status to a storage error naming the operation.
caf::error to_error(const rocksdb::Status& st, std::string_view what);

/// Sets im.pseudonym_key at open (patient_keys.cpp): derived from the node
/// key, or the directory's own secret (created when `fresh`).
caf::error load_pseudonym_key(store::impl& im, bool fresh);

}  // namespace healthtwin::storage
