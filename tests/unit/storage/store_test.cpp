#include "storage/store.hpp"

#include <filesystem>

#include <gtest/gtest.h>

#include "storage/alert_table.hpp"
#include "storage/ingest_log.hpp"
#include "storage/series_table.hpp"
#include "storage/meta_records.hpp"
#include "storage/twin_table.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin;
using namespace healthtwin::storage;
using healthtwin::testing::store_fixture;

using store_test = store_fixture;

TEST_F(store_test, refuses_a_data_dir_written_with_another_shard_count) {
  db_.reset();
  store_settings s;
  s.data_dir = dir_.str();
  s.shards = shards_ + 1;
  auto opened = store::open(s);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error(), errc::incompatible);
  EXPECT_NE(describe(opened.error()).find("shards=16"), std::string::npos)
      << describe(opened.error());
}

TEST_F(store_test, refuses_bad_settings_naming_the_field) {
  store_settings s;
  s.data_dir = "";
  auto opened = store::open(s);
  ASSERT_FALSE(opened);
  EXPECT_NE(describe(opened.error()).find("data_dir"), std::string::npos);
  s.data_dir = dir_.str() + "/x";
  s.shards = 0;
  opened = store::open(s);
  ASSERT_FALSE(opened);
  EXPECT_NE(describe(opened.error()).find("shards"), std::string::npos);
}

TEST_F(store_test, ingest_log_replays_in_order_after_restart) {
  for (uint64_t pos = 1; pos <= 300; ++pos) {
    write_batch b{db()};
    ingest_log::append(b, pos, "record-" + std::to_string(pos));
    ASSERT_FALSE(db().write(b, true));
  }
  reopen();
  ingest_log log{db()};
  EXPECT_EQ(*log.last_position(), 300u);
  uint64_t expect = 42;
  ASSERT_FALSE(log.replay(42, [&](uint64_t pos, std::string_view rec) {
    EXPECT_EQ(pos, expect);
    EXPECT_EQ(rec, "record-" + std::to_string(pos));
    ++expect;
    return true;
  }));
  EXPECT_EQ(expect, 301u);
}

TEST_F(store_test, checkpoint_truncates_the_log_but_positions_keep_growing) {
  ingest_log log{db()};
  for (uint64_t pos = 1; pos <= 10; ++pos) {
    write_batch b{db()};
    ingest_log::append(b, pos, "r");
    ASSERT_FALSE(db().write(b, false));
  }
  write_batch b{db()};
  ingest_log::advance_checkpoint(b, 10);
  ASSERT_FALSE(db().write(b, true));
  reopen();
  ingest_log after{db()};
  EXPECT_EQ(*after.checkpoint(), 10u);
  EXPECT_EQ(*after.last_position(), 10u);
  int seen = 0;
  ASSERT_FALSE(after.replay(0, [&](uint64_t, std::string_view) { return ++seen, true; }));
  EXPECT_EQ(seen, 0);
}

namespace {

// Bytes of `c`'s table files, and of the write-ahead log files in `dir`.
uint64_t sst_bytes(store& s, column c) {
  for (auto& cs : s.stats().columns)
    if (std::string_view{cs.name} == (c == column::log ? "log" : "twins"))
      return cs.sst_bytes;
  return 0;
}

uint64_t wal_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().extension() == ".log")
      n += f.file_size();
  return n;
}

// 40 MB of log records in table files, positions 1..n.
uint64_t fill_log(store& s) {
  std::string record(4000, 'r');
  uint64_t pos = 0;
  for (int file = 0; file < 5; ++file) {
    for (int i = 0; i < 2000; ++i) {
      write_batch b{s};
      ingest_log::append(b, ++pos, record);
      EXPECT_FALSE(s.write(b, false));
    }
    EXPECT_FALSE(s.flush_at_stop());  // a table file per round
  }
  return pos;
}

}  // namespace

TEST_F(store_test, the_log_behind_a_checkpoint_gives_its_disk_back_at_once) {
  auto last = fill_log(db());
  EXPECT_GT(sst_bytes(db(), column::log), 30'000'000u);
  write_batch b{db()};
  ingest_log::advance_checkpoint(b, last - 10);
  ASSERT_FALSE(db().write(b, true));
  ASSERT_FALSE(ingest_log{db()}.reclaim(last - 10));
  EXPECT_LT(sst_bytes(db(), column::log), 1'000'000u);  // was a compaction away
  int seen = 0;
  ASSERT_FALSE(ingest_log{db()}.replay(0, [&](uint64_t, std::string_view) { return ++seen, true; }));
  EXPECT_EQ(seen, 10);  // the tail is kept
}

TEST_F(store_test, a_clean_stop_leaves_no_write_ahead_log_and_no_log_behind_the_checkpoint) {
  std::string record(4000, 'r');
  for (uint64_t pos = 1; pos <= 5000; ++pos) {
    write_batch b{db()};
    ingest_log::append(b, pos, record);
    b.put(column::twins, "snapshot" + std::to_string(pos % 100), record);
    ASSERT_FALSE(db().write(b, false));
  }
  write_batch cp{db()};
  ingest_log::advance_checkpoint(cp, 5000);
  ASSERT_FALSE(db().write(cp, true));
  EXPECT_GT(wal_bytes(dir_.str()), 20'000'000u);
  ASSERT_FALSE(db().flush_at_stop());
  EXPECT_EQ(wal_bytes(dir_.str()), 0u);
  EXPECT_LT(sst_bytes(db(), column::log), 10'000u);
  EXPECT_LT(sst_bytes(db(), column::twins), 1'000'000u);  // 100 snapshots of 4 kB, once each
  reopen();
  EXPECT_EQ(*ingest_log{db()}.checkpoint(), 5000u);
  auto v = db().get(column::twins, "snapshot7");
  ASSERT_TRUE(v && *v);
}

TEST_F(store_test, twin_table_keeps_records_per_kind_and_name) {
  twin_table reg{db(), column::registry};
  write_batch batch{db()};
  reg.put(batch, models::twin_kind::patient, "tenants/h/patients/p", "P");
  reg.put(batch, models::twin_kind::device, "tenants/h/devices/p", "D");
  ASSERT_FALSE(db().write(batch, false));
  reopen();
  twin_table again{db(), column::registry};
  EXPECT_EQ(**again.get(models::twin_kind::patient, "tenants/h/patients/p"), "P");
  EXPECT_EQ(**again.get(models::twin_kind::device, "tenants/h/devices/p"), "D");
  EXPECT_FALSE(*again.get(models::twin_kind::patient, "tenants/h/patients/q"));
}

TEST_F(store_test, series_table_reads_a_time_range_of_closed_chunks) {
  series_table series{db()};
  const std::string p = "tenants/h/patients/p";
  for (uint32_t chunk = 0; chunk < 4; ++chunk) {
    series_chunk_builder b;
    for (int i = 0; i < 100; ++i)
      b.append(static_cast<int64_t>(chunk) * 100'000 + i * 1000, chunk * 100 + i);
    ASSERT_FALSE(series.put_chunk(p, 1, chunk, b.finish()));
  }
  std::vector<sample> out;
  ASSERT_FALSE(series.read(p, 1, 150'000, 250'000, 4, out));
  ASSERT_EQ(out.size(), 100u);
  EXPECT_EQ(out.front().time_ms, 150'000);
  EXPECT_EQ(out.back().time_ms, 249'000);
  out.clear();
  ASSERT_FALSE(series.read(p, 1, 0, 1'000'000, 2, out));  // only chunks 0 and 1
  EXPECT_EQ(out.size(), 200u);
  out.clear();
  ASSERT_FALSE(series.read(p, 2, 0, 1'000'000, 4, out));  // other metric
  EXPECT_TRUE(out.empty());
}

TEST_F(store_test, alert_table_tracks_active_alerts_and_events) {
  alert_table alerts{db()};
  write_batch b{db()};
  const std::string p = "tenants/h/patients/p";
  ASSERT_FALSE(alerts.put(b, p, "a1", "rec1", true));
  ASSERT_FALSE(alerts.put(b, p, "a2", "rec2", true));
  ASSERT_FALSE(alerts.put_event(b, 1, p, "ev1"));
  ASSERT_FALSE(alerts.put_event(b, 2, p, "ev2"));
  ASSERT_FALSE(db().write(b, true));
  write_batch b2{db()};
  ASSERT_FALSE(alerts.put(b2, p, "a1", "rec1-resolved", false));
  ASSERT_FALSE(alerts.put_event(b2, 3, p, "ev3"));
  ASSERT_FALSE(db().write(b2, true));
  reopen();
  alert_table again{db()};
  EXPECT_EQ(*again.last_event_sequence(), 3u);
  std::vector<std::string> active;
  ASSERT_FALSE(again.scan_active([&](std::string_view r) { active.emplace_back(r); }));
  EXPECT_EQ(active, std::vector<std::string>{"rec2"});
  std::vector<uint64_t> seqs;
  ASSERT_FALSE(again.scan_events(1, [&](uint64_t s, std::string_view) {
    seqs.push_back(s);
    return true;
  }));
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(**again.get("tenants/h/patients/p", "a1"), "rec1-resolved");
}

TEST_F(store_test, empty_alert_log_has_sequence_zero) {
  alert_table alerts{db()};
  EXPECT_EQ(*alerts.last_event_sequence(), 0u);
}

TEST_F(store_test, a_checkpoint_is_a_data_directory_with_everything_written_before_it) {
  twin_table reg{db(), column::registry};
  write_batch batch{db()};
  reg.put(batch, models::twin_kind::patient, "tenants/h/patients/p", "before");
  ASSERT_FALSE(db().write(batch, false));  // still in the memtable: the checkpoint flushes it
  healthtwin::testing::temp_dir backups;
  auto made = db().checkpoint(backups.str() + "/b1");
  ASSERT_TRUE(made) << describe(made.error());
  EXPECT_GT(made->first, 0u);
  EXPECT_GT(made->second, 0u);
  write_batch later{db()};
  reg.put(later, models::twin_kind::patient, "tenants/h/patients/q", "after");
  ASSERT_FALSE(db().write(later, false));
  EXPECT_FALSE(db().checkpoint(backups.str() + "/b1"));  // an existing directory is refused

  store_settings s;
  s.data_dir = backups.str() + "/b1";
  s.shards = shards_;
  auto restored = store::open(s);
  ASSERT_TRUE(restored) << describe(restored.error());
  twin_table copy{**restored, column::registry};
  EXPECT_EQ(**copy.get(models::twin_kind::patient, "tenants/h/patients/p"), "before");
  EXPECT_FALSE(*copy.get(models::twin_kind::patient, "tenants/h/patients/q"));
  EXPECT_EQ((*restored)->pseudonym_key_id(), db().pseudonym_key_id());
  EXPECT_FALSE(db().database_id().empty());
  EXPECT_NE((*restored)->database_id(), db().database_id());  // a copy is another database
}

TEST_F(store_test, meta_records_are_kept_listed_and_dropped_per_kind) {
  ASSERT_FALSE(put_meta_record(db(), "fhir-subscription", "h1/aa", "one"));
  ASSERT_FALSE(put_meta_record(db(), "fhir-subscription", "h1/bb", "two"));
  ASSERT_FALSE(put_meta_record(db(), "fhir-subscription", "h1/aa", "one again"));
  ASSERT_FALSE(put_meta_record(db(), "rollout", "h1/aa", "other kind"));
  reopen();
  auto all = load_meta_records(db(), "fhir-subscription");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0], (std::pair<std::string, std::string>{"h1/aa", "one again"}));
  EXPECT_EQ((*all)[1].first, "h1/bb");
  ASSERT_FALSE(drop_meta_record(db(), "fhir-subscription", "h1/aa"));
  all = load_meta_records(db(), "fhir-subscription");
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].first, "h1/bb");
  auto rollouts = load_meta_records(db(), "rollout");
  ASSERT_TRUE(rollouts);
  ASSERT_EQ(rollouts->size(), 1u);
  EXPECT_EQ((*rollouts)[0].second, "other kind");
}
