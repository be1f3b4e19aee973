#include "storage/store.hpp"

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <filesystem>

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <spdlog/spdlog.h>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/file_encryption.hpp"
#include "storage/store_impl.hpp"

namespace healthtwin::storage {

namespace {

// 2: series codec format 2, patient snapshots with model state (issue 3).
constexpr uint32_t format_version = 2;

// Index = static_cast<size_t>(column).
constexpr std::array<const char*, column_count> column_names{
    "default", "log", "registry", "twins", "series", "alerts", "audit", "keys"};

rocksdb::ColumnFamilyOptions column_options(column c, const store_settings& s,
                                            const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  switch (c) {
    case column::log:
      // Written once, read once on recovery, then range-deleted: large
      // memtables, no compression (the data is short-lived), no filters.
      o.write_buffer_size = s.log_write_buffer_bytes;
      o.max_write_buffer_number = 4;
      o.compression = rocksdb::kNoCompression;
      break;
    case column::series:
      // Chunks are already compact; zstd at the bottom level only.
      o.compression = rocksdb::kLZ4Compression;
      o.bottommost_compression = rocksdb::kZSTD;
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      break;
    default:
      // Point lookups by twin name: bloom filters.
      o.compression = rocksdb::kLZ4Compression;
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      break;
  }
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

caf::error check_meta(store::impl& im, bool& fresh) {
  std::string value;
  auto st = im.db->Get(rocksdb::ReadOptions{}, im.cf(column::meta), "meta", &value);
  if (st.IsNotFound()) {
    if (im.settings.shards == 0)
      return caf::make_error(errc::invalid_settings,
                             "shards=0 (as stored) needs an existing data directory, not " +
                                 im.settings.data_dir);
    fresh = true;
    internal::NodeMeta meta;
    meta.set_format_version(format_version);
    meta.set_shards(im.settings.shards);
    meta.set_shard_hash(std::string{models::twin_hash_name});
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return to_error(im.db->Put(wo, im.cf(column::meta), "meta", meta.SerializeAsString()),
                    "write node meta");
  }
  if (!st.ok())
    return to_error(st, "read node meta");
  internal::NodeMeta meta;
  if (!meta.ParseFromString(value))
    return caf::make_error(errc::corruption, std::string{"node meta record does not parse"});
  if (meta.format_version() != format_version)
    return caf::make_error(errc::incompatible,
                           "data directory has format version " +
                               std::to_string(meta.format_version()) + ", this build reads " +
                               std::to_string(format_version));
  if (im.settings.shards == 0)
    im.settings.shards = meta.shards();
  if (meta.shards() != im.settings.shards)
    return caf::make_error(errc::incompatible,
                           "data directory was created with shards=" +
                               std::to_string(meta.shards()) + ", configured shards=" +
                               std::to_string(im.settings.shards));
  if (meta.shard_hash() != models::twin_hash_name)
    return caf::make_error(errc::incompatible,
                           "data directory uses shard hash " + meta.shard_hash());
  return caf::none;
}

// RocksDB's info log goes to the node's log instead of a LOG file in the
// data directory: no plaintext file is left beside encrypted ones, and
// operators find storage warnings where they look for everything else.
// Its routine chatter (flushes, compaction summaries) is debug level.
class spdlog_info_log final : public rocksdb::Logger {
public:
  spdlog_info_log() : rocksdb::Logger(level_from_spdlog()) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel())
      return;
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    switch (level) {
      case rocksdb::InfoLogLevel::DEBUG_LEVEL:
      case rocksdb::InfoLogLevel::INFO_LEVEL:
      case rocksdb::InfoLogLevel::HEADER_LEVEL: spdlog::debug("rocksdb: {}", line); break;
      case rocksdb::InfoLogLevel::WARN_LEVEL: spdlog::warn("rocksdb: {}", line); break;
      default: spdlog::error("rocksdb: {}", line); break;
    }
  }

private:
  static rocksdb::InfoLogLevel level_from_spdlog() {
    return spdlog::should_log(spdlog::level::debug) ? rocksdb::InfoLogLevel::INFO_LEVEL
                                                     : rocksdb::InfoLogLevel::WARN_LEVEL;
  }
};

// Opens a directory only with the key it was created with: a mismatch is
// told by name here instead of surfacing as unreadable files.
caf::error check_encryption(const store_settings& s, const std::optional<node_key>& key) {
  auto current = s.data_dir + "/CURRENT";
  if (!std::filesystem::exists(current))
    return caf::none;  // a new directory takes the configured mode
  auto id = file_key_id(current);
  if (key && !id)
    return caf::make_error(errc::incompatible,
                           "data directory " + s.data_dir +
                               " is not encrypted, but an encryption key file is configured "
                               "(an existing directory cannot be encrypted in place)");
  if (!key && id)
    return caf::make_error(errc::incompatible, "data directory " + s.data_dir +
                                                   " is encrypted (key " + *id +
                                                   "); configure its encryption key file");
  if (key && *id != key->id())
    return caf::make_error(errc::incompatible, "data directory " + s.data_dir +
                                                   " is encrypted with key " + *id +
                                                   ", not the configured key " + key->id());
  return caf::none;
}

}  // namespace

caf::error to_error(const rocksdb::Status& st, std::string_view what) {
  if (st.ok())
    return caf::none;
  std::string ctx{what};
  ctx += ": " + st.ToString();
  if (st.IsNoSpace() || st.subcode() == rocksdb::Status::kNoSpace)
    return caf::make_error(errc::no_space, std::move(ctx));
  if (st.IsCorruption())
    return caf::make_error(errc::corruption, std::move(ctx));
  return caf::make_error(errc::io_error, std::move(ctx));
}

store::impl::~impl() {
  if (db) {
    for (auto* h : columns)
      if (h)
        db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
  }
}

store::store(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
store::~store() = default;

const store_settings& store::settings() const noexcept {
  return impl_->settings;
}

caf::expected<std::unique_ptr<store>> store::open(const store_settings& settings) {
  if (settings.data_dir.empty())
    return caf::make_error(errc::invalid_settings, std::string{"data_dir is empty"});
  if (settings.shards > 65536)
    return caf::make_error(errc::invalid_settings,
                           std::string{"shards must be between 1 and 65536 (0: as stored)"});
  std::error_code ec;
  std::filesystem::create_directories(settings.data_dir, ec);
  if (ec)
    return caf::make_error(errc::io_error,
                           "cannot create data_dir " + settings.data_dir + ": " + ec.message());

  auto im = std::make_unique<impl>();
  im->settings = settings;
  if (!settings.encryption_key_file.empty()) {
    auto key = node_key::load(settings.encryption_key_file);
    if (!key)
      return key.error();
    im->key = std::move(*key);
  }
  if (auto err = check_encryption(settings, im->key))
    return err;
  auto cache = rocksdb::NewLRUCache(settings.block_cache_bytes);

  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  db_opts.max_background_jobs = 2;
  db_opts.bytes_per_sync = 1 << 20;
  db_opts.info_log = std::make_shared<spdlog_info_log>();
  // The MANIFEST keeps the key range of every file it ever listed until it
  // is rewritten (at each start, or at this size): 64 MiB instead of 1 GiB
  // bounds how long an erased patient's id lingers there (docs/storage.md).
  db_opts.max_manifest_file_size = uint64_t{64} << 20;
  db_opts.max_total_wal_size = size_t{128} << 20;
  // A torn last record (crash mid-write, never acknowledged) is dropped;
  // damage anywhere else refuses to open instead of silently losing
  // acknowledged writes behind it.
  db_opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  if (settings.statistics) {
    im->statistics = rocksdb::CreateDBStatistics();
    im->statistics->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
    db_opts.statistics = im->statistics;
  }
  if (im->key) {
    im->env = make_encrypted_env(*im->key);
    db_opts.env = im->env.get();
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (size_t i = 0; i < column_count; ++i)
    descriptors.emplace_back(column_names[i],
                             column_options(static_cast<column>(i), settings, cache));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(db_opts, settings.data_dir, descriptors, &handles, &raw);
  if (!st.ok())
    return to_error(st, "open " + settings.data_dir);
  im->db.reset(raw);
  for (size_t i = 0; i < handles.size(); ++i)
    im->columns[i] = handles[i];

  bool fresh = false;
  if (auto err = check_meta(*im, fresh))
    return err;
  if (auto err = load_pseudonym_key(*im, fresh))
    return err;
  if (auto err = load_replicated_index(*im))
    return err;
  auto* raw_im = im.get();
  std::unique_ptr<store> out{new store(std::move(im))};
  raw_im->patients = std::make_unique<patient_keys>(*out, raw_im->key, raw_im->pseudonym_key);
  return out;
}

rocksdb::Status store::impl::checked_write(const rocksdb::Status& st) {
  // Only a failing disk (not a full one) or damaged data puts the database
  // in a state that refuses every later write.
  if (!(st.IsIOError() && !st.IsNoSpace()) && !st.IsCorruption())
    return st;
  std::lock_guard<std::mutex> guard{failure_mtx};
  if (!write_failed.exchange(true, std::memory_order_relaxed)) {
    failure = st.ToString();
    spdlog::critical("storage: a write failed ({}); writes are refused until the database "
                     "resumes, or the node restarts on a working disk",
                     failure);
  }
  return st;
}

// A disk that failed a write (EIO) may work again: Resume() flushes what the
// database holds to new files and lets writes in again; while the disk
// still fails it fails too, and writes keep being refused.
void store::impl::resume_after_failure() {
  if (!write_failed.load(std::memory_order_relaxed))
    return;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  auto due = next_resume_ms.load(std::memory_order_relaxed);
  if (now < due || !next_resume_ms.compare_exchange_strong(due, now + 1000))
    return;  // tried less than a second ago, or another writer is trying
  auto st = db->Resume();
  if (st.ok()) {
    std::lock_guard<std::mutex> guard{failure_mtx};
    write_failed.store(false, std::memory_order_relaxed);
    failure.clear();
    spdlog::info("storage: writes resumed after a failed write");
  } else {
    spdlog::warn("storage: writes still refused: {}", st.ToString());
  }
}

std::string store::write_failure() const {
  std::lock_guard<std::mutex> guard{impl_->failure_mtx};
  return impl_->failure;
}

caf::error store::write(write_batch& batch, bool sync) {
  if (auto* r = impl_->replicator.load(std::memory_order_acquire)) {
    auto& data = batch.internals().batch.Data();
    return r->replicate(std::string_view{data.data(), data.size()});
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync && impl_->settings.sync_wal;
  impl_->resume_after_failure();
  return to_error(impl_->checked_write(impl_->db->Write(wo, &batch.internals().batch)), "write");
}

caf::error store::sync_wal() {
  if (!impl_->settings.sync_wal)
    return caf::none;
  impl_->resume_after_failure();
  return to_error(impl_->checked_write(impl_->db->SyncWAL()), "sync WAL");
}

caf::expected<std::optional<std::string>> store::get(column c, std::string_view key) {
  std::string value;
  auto st = impl_->db->Get(rocksdb::ReadOptions{}, impl_->cf(c),
                           rocksdb::Slice{key.data(), key.size()}, &value);
  if (st.IsNotFound())
    return std::optional<std::string>{};
  if (!st.ok())
    return to_error(st, "get");
  return std::optional<std::string>{std::move(value)};
}

caf::error store::scan(column c, std::string_view begin, std::string_view end,
                       const std::function<bool(std::string_view, std::string_view)>& fn) {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper{end.data(), end.size()};
  if (!end.empty())
    ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(ro, impl_->cf(c))};
  for (it->Seek(rocksdb::Slice{begin.data(), begin.size()}); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (!fn(std::string_view{k.data(), k.size()}, std::string_view{v.data(), v.size()}))
      break;
  }
  return to_error(it->status(), "scan");
}

caf::expected<std::optional<std::string>> store::last_key(column c, std::string_view before) {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper{before.data(), before.size()};
  if (!before.empty())
    ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(ro, impl_->cf(c))};
  it->SeekToLast();
  if (auto err = to_error(it->status(), "seek last"))
    return err;
  if (!it->Valid())
    return std::optional<std::string>{};
  return std::optional<std::string>{it->key().ToString()};
}

std::string store::node_key_id() const {
  return impl_->key ? impl_->key->id() : "none";
}

std::string store::database_id() const {
  std::string id;
  if (!impl_->db->GetDbIdentity(id).ok())
    return {};
  return id;
}

std::string store::pseudonym_key_id() const {
  return short_hex(hmac_sha256(impl_->pseudonym_key, "healthtwin pseudonym key id"));
}

caf::expected<std::string> store::seal(std::string_view patient, std::string_view plain) {
  return impl_->patients->seal(patient, plain);
}

caf::error store::add_patient_key(write_batch& batch, std::string_view patient) {
  return impl_->patients->add_key(batch, patient);
}

caf::expected<std::string> store::unseal(std::string_view stored) {
  return impl_->patients->unseal(stored);
}

caf::expected<std::optional<std::string>> store::get_unsealed(column c, std::string_view key) {
  auto v = get(c, key);
  if (!v || !*v)
    return v;
  auto plain = unseal(**v);
  if (!plain)
    return plain.error();
  return std::optional<std::string>{std::move(*plain)};
}

caf::error store::destroy_patient_key(std::string_view patient) {
  return impl_->patients->destroy(patient);
}

bool store::patient_erased(std::string_view patient) {
  return impl_->patients->erased(patient);
}

std::string store::pseudonym(std::string_view patient) {
  return impl_->patients->pseudonym(patient);
}

store::memory_usage store::memory() const {
  memory_usage m;
  uint64_t v = 0;
  for (auto* cf : impl_->columns) {
    if (impl_->db->GetIntProperty(cf, "rocksdb.cur-size-all-mem-tables", &v))
      m.memtables += v;
    if (impl_->db->GetIntProperty(cf, "rocksdb.estimate-table-readers-mem", &v))
      m.table_readers += v;
  }
  // One cache is shared by every column family.
  if (impl_->db->GetIntProperty(impl_->columns[0], "rocksdb.block-cache-usage", &v))
    m.block_cache = v;
  return m;
}

store::db_stats store::stats() const {
  db_stats out;
  uint64_t v = 0;
  auto& db = *impl_->db;
  for (size_t i = 0; i < impl_->columns.size(); ++i) {
    auto* cf = impl_->columns[i];
    column_stats c;
    c.name = column_names[i];
    if (db.GetIntProperty(cf, "rocksdb.total-sst-files-size", &v))
      c.sst_bytes = v;
    if (db.GetIntProperty(cf, "rocksdb.estimate-live-data-size", &v))
      c.live_data_bytes = v;
    if (db.GetIntProperty(cf, "rocksdb.estimate-num-keys", &v))
      c.estimated_keys = v;
    if (db.GetIntProperty(cf, "rocksdb.estimate-pending-compaction-bytes", &v))
      c.pending_compaction_bytes = v;
    out.columns.push_back(c);
  }
  if (db.GetIntProperty("rocksdb.num-running-compactions", &v))
    out.running_compactions = v;
  if (db.GetIntProperty("rocksdb.num-running-flushes", &v))
    out.running_flushes = v;
  if (db.GetIntProperty("rocksdb.background-errors", &v))
    out.background_errors = v;
  if (db.GetIntProperty("rocksdb.is-write-stopped", &v))
    out.writes_stopped = v != 0;
  if (db.GetIntProperty("rocksdb.actual-delayed-write-rate", &v))
    out.delayed_write_rate = v;
  return out;
}

std::vector<store::ticker> store::tickers() const {
  static constexpr std::pair<const char*, rocksdb::Tickers> exported[] = {
      {"block_cache_hit", rocksdb::BLOCK_CACHE_HIT},
      {"block_cache_miss", rocksdb::BLOCK_CACHE_MISS},
      {"bloom_filter_useful", rocksdb::BLOOM_FILTER_USEFUL},
      {"bytes_written", rocksdb::BYTES_WRITTEN},
      {"bytes_read", rocksdb::BYTES_READ},
      {"wal_bytes", rocksdb::WAL_FILE_BYTES},
      {"wal_syncs", rocksdb::WAL_FILE_SYNCED},
      {"flush_write_bytes", rocksdb::FLUSH_WRITE_BYTES},
      {"compaction_read_bytes", rocksdb::COMPACT_READ_BYTES},
      {"compaction_write_bytes", rocksdb::COMPACT_WRITE_BYTES},
      {"compaction_keys_dropped_by_range_delete", rocksdb::COMPACTION_KEY_DROP_RANGE_DEL},
      {"write_stall_micros", rocksdb::STALL_MICROS},
  };
  std::vector<ticker> out;
  if (!impl_->statistics)
    return out;
  for (auto& [name, t] : exported)
    out.push_back({name, impl_->statistics->getTickerCount(t)});
  return out;
}

std::string store::describe_stats() const {
  std::string out;
  impl_->db->GetProperty("rocksdb.stats", &out);
  return out;
}

write_batch::write_batch(store& s) : impl_(std::make_unique<impl>()) {
  impl_->owner = &s.internals();
}
write_batch::~write_batch() = default;
write_batch::write_batch(write_batch&&) noexcept = default;

void write_batch::put(column c, std::string_view key, std::string_view value) {
  impl_->batch
      .Put(impl_->owner->cf(c), rocksdb::Slice{key.data(), key.size()},
           rocksdb::Slice{value.data(), value.size()})
      .PermitUncheckedError();  // in-memory append; fails only on size overflow
}

void write_batch::erase(column c, std::string_view key) {
  impl_->batch.Delete(impl_->owner->cf(c), rocksdb::Slice{key.data(), key.size()})
      .PermitUncheckedError();
}

void write_batch::erase_range(column c, std::string_view begin, std::string_view end) {
  impl_->batch
      .DeleteRange(impl_->owner->cf(c), rocksdb::Slice{begin.data(), begin.size()},
                   rocksdb::Slice{end.data(), end.size()})
      .PermitUncheckedError();
}

size_t write_batch::count() const noexcept {
  return static_cast<size_t>(impl_->batch.Count());
}

void write_batch::clear() {
  impl_->batch.Clear();
}

}  // namespace healthtwin::storage
