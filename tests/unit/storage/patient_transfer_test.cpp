// A patient's stored records move between two stores that share nothing
// (other node keys, other shard counts: two regions): every record of the
// patient arrives, opened and sealed again under the new store's key, in
// the new store's shard; the snapshot starts at the new log position;
// nothing of another patient travels; a record that is not the patient's
// is refused naming it.

#include "storage/patient_transfer.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/alert_table.hpp"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/registry.hpp"
#include "storage/series_codec.hpp"
#include "storage/series_table.hpp"
#include "storage/store.hpp"
#include "storage/twin_table.hpp"
#include "tests/support/key_file.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin;
using healthtwin::testing::temp_dir;
using storage::column;
using kind = storage::patient_entry::kind;

namespace {

// A patient's snapshot (log position 77), a series chunk, an active alert
// and a silence, as the node writes them.
void populate(storage::store& s, const std::string& patient) {
  storage::twin_table twins{s, column::twins};
  storage::write_batch b{s};
  internal::PatientSnapshot ps;
  ps.set_applied_lsn(77);
  ps.set_alerts_raised(3);
  ps.set_readings_applied(42);
  auto sealed = twins.stored_value(models::twin_kind::patient, patient, ps.SerializeAsString());
  ASSERT_TRUE(sealed);
  twins.put(b, models::twin_kind::patient, patient, *sealed);
  storage::series_chunk_builder chunk;
  chunk.append(1000, 97);
  chunk.append(2000, 84);
  ASSERT_FALSE(storage::series_table{s}.put_chunk(patient, 1, 0, chunk.finish()));
  internal::AlertRecord a;
  a.set_name(patient + "/alerts/3");
  a.set_patient(patient);
  storage::alert_table alerts{s};
  ASSERT_FALSE(alerts.put(b, patient, "3", a.SerializeAsString(), true));
  internal::AlertSilenceRecord x;
  x.set_patient(patient);
  alerts.put_silence(b, patient, "heart_rate", x.SerializeAsString());
  ASSERT_FALSE(s.write(b, true));
}

class patient_transfer_test : public ::testing::Test {
protected:
  void SetUp() override {
    using healthtwin::testing::open_store, healthtwin::testing::write_key_file;
    from_ = open_store(from_dir_, write_key_file(keys_.path() / "a.key", std::string(64, 'a')), 16);
    to_ = open_store(to_dir_, write_key_file(keys_.path() / "b.key", std::string(64, 'b')), 64);
    ASSERT_TRUE(from_ && to_);
    ASSERT_NO_FATAL_FAILURE(populate(*from_, patient_));
    ASSERT_NO_FATAL_FAILURE(populate(*from_, other_));
  }

  caf::error import(const std::vector<storage::patient_entry>& entries) {
    storage::write_batch b{*to_};
    if (auto err = storage::import_patient(*to_, b, patient_, entries, 5))
      return err;
    return to_->write(b, true);
  }

  temp_dir keys_, from_dir_, to_dir_;
  std::unique_ptr<storage::store> from_, to_;
  const std::string patient_ = "tenants/h1/patients/p1", other_ = "tenants/h1/patients/p2";
};

}  // namespace

TEST_F(patient_transfer_test, every_record_of_the_patient_arrives_sealed_under_the_new_key) {
  auto entries = storage::export_patient(*from_, patient_);
  ASSERT_TRUE(entries) << storage::describe(entries.error());
  ASSERT_EQ(entries->size(), 5u);  // snapshot, chunk, alert, active, silence
  for (auto& e : *entries) {
    if (e.what == kind::alert) {
      EXPECT_NE(e.value.find("/alerts/3"), std::string::npos) << "travels opened";
    }
  }
  ASSERT_FALSE(import(*entries));

  auto shard = models::shard_of(patient_, 64);
  auto snapshot = storage::twin_table{*to_, column::twins}.get(models::twin_kind::patient, patient_);
  ASSERT_TRUE(snapshot && *snapshot);
  internal::PatientSnapshot ps;
  ASSERT_TRUE(ps.ParseFromString(**snapshot));
  EXPECT_EQ(ps.applied_lsn(), 5u);  // the new store's log position
  EXPECT_EQ(ps.alerts_raised(), 3u);
  EXPECT_EQ(ps.readings_applied(), 42u);
  std::vector<storage::sample> samples;
  ASSERT_FALSE(storage::series_table{*to_}.read(patient_, 1, 0, 10'000, 1, samples));
  std::vector<double> values;
  for (auto& x : samples)
    values.push_back(x.value);
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, (std::vector<double>{84, 97}));
  auto alert = storage::alert_table{*to_}.get(patient_, "3");
  ASSERT_TRUE(alert && *alert);
  size_t active = 0, silences = 0;
  ASSERT_FALSE(storage::alert_table{*to_}.scan_active([&](std::string_view) { ++active; }, shard));
  ASSERT_FALSE(storage::alert_table{*to_}.scan_silences([&](std::string_view) { ++silences; }, shard));
  EXPECT_EQ(active, 1u);
  EXPECT_EQ(silences, 1u);
  // Sealed under the new store's key: the stored bytes are not the old ones, and the old store cannot open them.
  auto stored = to_->get(column::series, storage::key_codec::series_key(shard, patient_, 1, 0));
  ASSERT_TRUE(stored && *stored);
  EXPECT_FALSE(from_->unseal(**stored));
  // Nothing of the other patient came along.
  auto theirs = storage::twin_table{*to_, column::twins}.get(models::twin_kind::patient, other_);
  ASSERT_TRUE(theirs);
  EXPECT_FALSE(*theirs);
}

TEST_F(patient_transfer_test, a_record_of_another_patient_is_refused_naming_it) {
  auto theirs = storage::export_patient(*from_, other_);
  ASSERT_TRUE(theirs);
  for (auto& e : *theirs) {
    if (e.what != kind::alert && e.what != kind::silence)
      continue;
    auto err = import({e});
    ASSERT_TRUE(err) << storage::kind_name(e.what);
    EXPECT_EQ(err, storage::errc::invalid_record);
    EXPECT_NE(storage::describe(err).find("record 0 (" + std::string{storage::kind_name(e.what)} + ")"),
              std::string::npos)
        << storage::describe(err);
  }
  EXPECT_TRUE(import({{kind::series, "short", "x"}}));
  EXPECT_TRUE(import({{kind::snapshot, {}, "not a snapshot \xff\xff"}}));
  EXPECT_TRUE(import({{kind::active, "a/b", {}}}));
  auto mine = storage::twin_table{*to_, column::twins}.get(models::twin_kind::patient, patient_);
  ASSERT_TRUE(mine);
  EXPECT_FALSE(*mine);  // nothing was written
}
