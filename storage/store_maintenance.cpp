#include <vector>

#include <filesystem>

#include <rocksdb/convenience.h>
#include <rocksdb/utilities/checkpoint.h>
#include <spdlog/spdlog.h>

#include "storage/store_impl.hpp"

// Flushes and compactions of the store (tests, erasure, the ingest log's
// reclaim behind checkpoints, a clean stop).

namespace healthtwin::storage {

namespace {

// A column family larger than this is not compacted at stop: the stop
// would take too long (about 10 s per GiB here).
constexpr uint64_t max_stop_compaction_bytes = uint64_t{1} << 30;

}  // namespace

namespace {

// Flushes the memtable of `cf`, then compacts [begin, end) (null: open)
// down to the last level, dropping deleted entries for good.
caf::error flush_and_compact(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf,
                             const rocksdb::Slice* begin, const rocksdb::Slice* end) {
  if (auto err = to_error(db.Flush(rocksdb::FlushOptions{}, cf), "flush"))
    return err;
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return to_error(db.CompactRange(co, cf, begin, end), "compact");
}

}  // namespace

caf::error store::compact(column c) {
  return flush_and_compact(*impl_->db, impl_->cf(c), nullptr, nullptr);
}

caf::error store::compact_range(column c, std::string_view begin, std::string_view end) {
  rocksdb::Slice b{begin.data(), begin.size()};
  rocksdb::Slice e{end.data(), end.size()};
  return flush_and_compact(*impl_->db, impl_->cf(c), &b, &e);
}

caf::error store::flush_all_and_compact(column c) {
  rocksdb::FlushOptions fo;
  std::vector<rocksdb::ColumnFamilyHandle*> all{impl_->columns.begin(), impl_->columns.end()};
  if (auto err = to_error(impl_->db->Flush(fo, all), "flush"))
    return err;
  return compact(c);
}

caf::expected<std::pair<uint64_t, uint32_t>> store::checkpoint(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  if (auto err = to_error(rocksdb::Checkpoint::Create(impl_->db.get(), &raw), "checkpoint"))
    return err;
  std::unique_ptr<rocksdb::Checkpoint> cp{raw};
  // 0: flush every memtable first, so the copy needs no write-ahead log.
  if (auto err = to_error(cp->CreateCheckpoint(dir, 0), "checkpoint"))
    return err;
  uint64_t bytes = 0;
  uint32_t files = 0;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) {
      bytes += e.file_size(ec);
      ++files;
    }
  return std::pair{bytes, files};
}

caf::error store::reclaim(column c, std::string_view begin, std::string_view end) {
  rocksdb::Slice b{begin.data(), begin.size()};
  rocksdb::Slice e{end.data(), end.size()};
  auto* cf = impl_->cf(c);
  // Whole files first (no I/O); RocksDB leaves level-0 files to the compaction.
  if (auto err = to_error(rocksdb::DeleteFilesInRange(impl_->db.get(), cf, &b, &e, false), "delete files"))
    return err;
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  co.exclusive_manual_compaction = false;  // automatic compactions go on beside it
  return to_error(impl_->db->CompactRange(co, cf, &b, &e), "compact");
}

caf::error store::flush_at_stop() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> all{impl_->columns.begin(), impl_->columns.end()};
  if (auto err = to_error(impl_->db->Flush(fo, all), "flush"))
    return err;
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  if (auto err = to_error(impl_->db->CompactRange(co, impl_->cf(column::log), nullptr, nullptr),
                          "compact the log"))
    return err;
  // Snapshots are rewritten at every checkpoint: a young directory keeps
  // each twin's older versions in level-0 files no compaction has merged
  // yet (half its size after a few minutes of load). Merged here while that
  // is cheap; a large column family is left to its own compactions.
  for (auto c : {column::twins, column::series, column::alerts, column::registry}) {
    uint64_t total = 0, live = 0;
    auto* cf = impl_->cf(c);
    if (!impl_->db->GetIntProperty(cf, "rocksdb.total-sst-files-size", &total) ||
        !impl_->db->GetIntProperty(cf, "rocksdb.estimate-live-data-size", &live))
      continue;
    spdlog::debug("storage: {} holds {} bytes, {} of them live", static_cast<int>(c), total, live);
    if (total > (uint64_t{1} << 20) && total <= max_stop_compaction_bytes && total > live + live / 4)
      if (auto err = to_error(impl_->db->CompactRange(co, cf, nullptr, nullptr), "compact at stop"))
        return err;
  }
  return caf::none;
}

}  // namespace healthtwin::storage
