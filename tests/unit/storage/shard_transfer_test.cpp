// One shard's stored state moves between two encrypted stores that share
// the node key (docs/adr/0014): everything of the shard arrives, snapshots
// start over at log position 0, nothing of other shards travels, and the
// old owner keeps nothing of it.

#include "storage/shard_transfer.hpp"

#include <gtest/gtest.h>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/meta_records.hpp"
#include "storage/registry.hpp"
#include "storage/store.hpp"
#include "storage/twin_table.hpp"
#include "tests/support/key_file.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin;
using healthtwin::testing::temp_dir;
using storage::column;

namespace {

constexpr uint32_t shards = 16;

// The first name `prefix` + k in shard `shard`.
std::string name_in(const std::string& prefix, uint32_t shard) {
  for (int k = 0;; ++k)
    if (auto name = prefix + std::to_string(k); models::shard_of(name, shards) == shard)
      return name;
}

// A patient and its monitor in `shard`, with a snapshot each at log
// position 77, the monitor's window, a series chunk, an alert (record and
// active index) and a silence, as the node writes them.
void populate(storage::store& s, uint32_t shard, std::string& patient, std::string& device) {
  patient = name_in("tenants/h1/patients/p", shard);
  device = name_in("tenants/h1/devices/mon", shard);
  storage::write_batch b{s};
  storage::registry reg{s};
  storage::patient_record p;
  p.name = patient;
  p.ward = "ICU-1";
  p.devices = {device};
  reg.put(b, p);
  storage::device_record d;
  d.name = device;
  d.patient = patient;
  reg.put(b, d);
  ASSERT_FALSE(s.write(b, true));

  storage::twin_table twins{s, column::twins};
  storage::write_batch t{s};
  internal::PatientSnapshot ps;
  ps.set_applied_lsn(77);
  ps.add_conditions()->set_alert_id("3");
  auto sealed = twins.stored_value(models::twin_kind::patient, patient, ps.SerializeAsString());
  ASSERT_TRUE(sealed);
  twins.put(t, models::twin_kind::patient, patient, *sealed);
  internal::DeviceSnapshot ds;
  ds.set_applied_lsn(77);
  ds.set_readings_accepted(12);
  twins.put(t, models::twin_kind::device, device, ds.SerializeAsString());
  t.put(column::twins, storage::key_codec::window_key(shard, device), "window");
  auto chunk = s.seal(patient, "series chunk of " + patient);
  ASSERT_TRUE(chunk);
  t.put(column::series, storage::key_codec::series_key(shard, patient, 1, 0), *chunk);
  auto alert = s.seal(patient, "alert of " + patient);
  ASSERT_TRUE(alert);
  t.put(column::alerts, storage::key_codec::alert_key('a', shard, patient, "3"), *alert);
  t.put(column::alerts, storage::key_codec::alert_key('x', shard, patient, "3"), "");
  t.put(column::alerts, storage::key_codec::alert_key('s', shard, patient, "heart_rate"), *alert);
  ASSERT_FALSE(s.write(t, true));
}

size_t records_of_shard(storage::store& s, uint32_t shard) {
  std::string b, e;
  storage::key_codec::put_u16(b, static_cast<uint16_t>(shard));
  storage::key_codec::put_u16(e, static_cast<uint16_t>(shard + 1));
  size_t n = 0;
  auto count = [&](std::string_view, std::string_view) { return ++n, true; };
  for (auto c : {column::registry, column::twins, column::series})
    EXPECT_FALSE(s.scan(c, b, e, count));
  for (char kind : {'a', 'x', 's'})
    EXPECT_FALSE(s.scan(column::alerts, kind + b, kind + e, count));
  return n;
}

class shard_transfer_test : public ::testing::Test {
protected:
  void SetUp() override {
    key_file_ = healthtwin::testing::write_key_file(keys_.path() / "node.key", std::string(64, 'c'));
    old_owner_ = healthtwin::testing::open_store(old_dir_, key_file_, shards);
    new_owner_ = healthtwin::testing::open_store(new_dir_, key_file_, shards);
    ASSERT_TRUE(old_owner_ && new_owner_);
    ASSERT_NO_FATAL_FAILURE(populate(*old_owner_, moving_, patient_, device_));
    ASSERT_NO_FATAL_FAILURE(populate(*old_owner_, staying_, other_patient_, other_device_));
  }

  // Exports the moving shard in small chunks and imports each.
  size_t move() {
    size_t chunks = 0;
    auto err = storage::export_shard(*old_owner_, moving_, 100, [&](std::vector<storage::shard_entry>&& c) {
      ++chunks;
      return storage::import_shard_chunk(*new_owner_, moving_, std::move(c), 5);
    });
    EXPECT_FALSE(err) << storage::describe(err);
    return chunks;
  }

  temp_dir keys_, old_dir_, new_dir_;
  std::string key_file_;
  std::unique_ptr<storage::store> old_owner_, new_owner_;
  const uint32_t moving_ = 5, staying_ = 9;
  std::string patient_, device_, other_patient_, other_device_;
};

}  // namespace

TEST_F(shard_transfer_test, the_new_owner_gets_every_record_of_the_shard_and_nothing_else) {
  EXPECT_GT(move(), 3u) << "chunks of 100 bytes";
  EXPECT_EQ(records_of_shard(*new_owner_, moving_), records_of_shard(*old_owner_, moving_));
  EXPECT_EQ(records_of_shard(*new_owner_, staying_), 0u);

  storage::registry reg{*new_owner_};
  auto p = reg.get_patient(patient_);
  ASSERT_TRUE(p && *p);
  EXPECT_EQ((*p)->devices, std::vector<std::string>{device_});
  // Sealed values open with the moved key; snapshots start at position 0.
  storage::twin_table twins{*new_owner_, column::twins};
  auto ps = twins.get(models::twin_kind::patient, patient_);
  ASSERT_TRUE(ps && *ps) << (ps ? "missing" : storage::describe(ps.error()));
  internal::PatientSnapshot patient_snapshot;
  ASSERT_TRUE(patient_snapshot.ParseFromString(**ps));
  EXPECT_EQ(patient_snapshot.applied_lsn(), 5u);  // the new owner's log position
  ASSERT_EQ(patient_snapshot.conditions_size(), 1);
  EXPECT_EQ(patient_snapshot.conditions(0).alert_id(), "3");
  auto ds = twins.get(models::twin_kind::device, device_);
  ASSERT_TRUE(ds && *ds);
  internal::DeviceSnapshot device_snapshot;
  ASSERT_TRUE(device_snapshot.ParseFromString(**ds));
  EXPECT_EQ(device_snapshot.applied_lsn(), 5u);
  EXPECT_EQ(device_snapshot.readings_accepted(), 12u);
  auto chunk = new_owner_->get_unsealed(column::series, storage::key_codec::series_key(moving_, patient_, 1, 0));
  ASSERT_TRUE(chunk && *chunk);
  EXPECT_EQ(**chunk, "series chunk of " + patient_);
  auto alert = new_owner_->get_unsealed(column::alerts, storage::key_codec::alert_key('a', moving_, patient_, "3"));
  ASSERT_TRUE(alert && *alert);
  EXPECT_EQ(**alert, "alert of " + patient_);
  // New values of the patient are sealed with the same key on either side.
  auto fresh = new_owner_->seal(patient_, "after the move");
  ASSERT_TRUE(fresh);
  auto opened = old_owner_->unseal(*fresh);
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, "after the move");
}

TEST_F(shard_transfer_test, the_old_owner_keeps_nothing_of_a_dropped_shard_and_all_of_the_others) {
  move();
  ASSERT_FALSE(storage::drop_shard(*old_owner_, moving_));
  EXPECT_EQ(records_of_shard(*old_owner_, moving_), 0u);
  auto key = old_owner_->get(column::keys, "n" + patient_);
  ASSERT_TRUE(key);
  EXPECT_FALSE(*key) << "the moved patient's key entry stays behind";
  EXPECT_GT(records_of_shard(*old_owner_, staying_), 0u);
  storage::twin_table twins{*old_owner_, column::twins};
  auto other = twins.get(models::twin_kind::patient, other_patient_);
  ASSERT_TRUE(other && *other) << "another shard's sealed snapshot still opens";
  // The new owner still has it all after a restart.
  new_owner_.reset();
  new_owner_ = healthtwin::testing::open_store(new_dir_, key_file_, shards);
  storage::twin_table moved{*new_owner_, column::twins};
  auto ps = moved.get(models::twin_kind::patient, patient_);
  ASSERT_TRUE(ps && *ps);
}

TEST_F(shard_transfer_test, an_entry_of_another_shard_is_refused_naming_it) {
  std::vector<storage::shard_entry> chunk;
  chunk.push_back({column::registry, storage::key_codec::twin_key(staying_, models::twin_kind::patient, other_patient_), "x"});
  auto err = storage::import_shard_chunk(*new_owner_, moving_, std::move(chunk), 5);
  ASSERT_TRUE(err);
  EXPECT_EQ(err, storage::errc::invalid_record);
  EXPECT_NE(storage::describe(err).find("shard entry 0: key not of shard 5"), std::string::npos)
      << storage::describe(err);
  std::vector<storage::shard_entry> stray_key;
  stray_key.push_back({column::keys, "k12345678", "wrapped"});
  EXPECT_EQ(storage::import_shard_chunk(*new_owner_, moving_, std::move(stray_key), 5), storage::errc::invalid_record);
}

// A marker names a pseudonym, not a shard: every one travels with every
// shard, so a patient erased on any member stays erased on the new owner.
TEST_F(shard_transfer_test, erasure_markers_travel_with_every_shard) {
  const std::string gone = name_in("tenants/h1/patients/gone", 3);  // a shard that does not move
  ASSERT_FALSE(old_owner_->destroy_patient_key(other_patient_));
  ASSERT_FALSE(old_owner_->destroy_patient_key(gone));
  ASSERT_FALSE(new_owner_->patient_erased(gone));
  move();
  EXPECT_TRUE(new_owner_->patient_erased(other_patient_));
  EXPECT_TRUE(new_owner_->patient_erased(gone));
  EXPECT_FALSE(new_owner_->patient_erased(patient_));
  auto sealed = new_owner_->seal(gone, "written after the erasure");
  ASSERT_FALSE(sealed);
  EXPECT_EQ(sealed.error(), storage::errc::erased);

  std::vector<storage::shard_entry> bad;
  bad.push_back({column::keys, "z" + std::string(16, 'q'), ""});
  auto err = storage::import_shard_chunk(*new_owner_, moving_, std::move(bad), 5);
  EXPECT_EQ(err, storage::errc::invalid_record);
  EXPECT_NE(storage::describe(err).find("shard entry 0: a malformed erasure marker"), std::string::npos)
      << storage::describe(err);
}

// A firmware rollout lives in the shard of its name and moves with it; the
// old owner keeps no copy, and a rollout of another shard stays and is
// refused in the moving shard's stream.
TEST_F(shard_transfer_test, firmware_rollouts_move_with_the_shard_of_their_name) {
  auto rollout_in = [](uint32_t shard) {
    for (int k = 0;; ++k)
      if (models::shard_of("tenants/h1/rollouts/r" + std::to_string(k), shards) == shard)
        return "h1/r" + std::to_string(k);
  };
  auto moving = rollout_in(moving_), staying = rollout_in(staying_);
  ASSERT_FALSE(storage::put_meta_record(*old_owner_, "rollout", moving, "moving rollout"));
  ASSERT_FALSE(storage::put_meta_record(*old_owner_, "rollout", staying, "staying rollout"));
  ASSERT_FALSE(storage::put_meta_record(*old_owner_, "fhir-subscription", moving, "stays on its node"));
  EXPECT_EQ(storage::meta_shard("rollout/" + moving, shards), moving_);
  EXPECT_FALSE(storage::meta_shard("fhir-subscription/" + moving, shards));
  EXPECT_FALSE(storage::meta_shard("rollout/h1", shards)) << "no id";

  move();
  ASSERT_FALSE(storage::drop_shard(*old_owner_, moving_));
  auto on_new = storage::load_meta_records(*new_owner_, "rollout");
  ASSERT_TRUE(on_new);
  ASSERT_EQ(on_new->size(), 1u);
  EXPECT_EQ((*on_new)[0].first, moving);
  EXPECT_EQ((*on_new)[0].second, "moving rollout");
  auto on_old = storage::load_meta_records(*old_owner_, "rollout");
  ASSERT_TRUE(on_old);
  ASSERT_EQ(on_old->size(), 1u);
  EXPECT_EQ((*on_old)[0].first, staying);
  auto subscriptions = storage::load_meta_records(*old_owner_, "fhir-subscription");
  ASSERT_TRUE(subscriptions);
  EXPECT_EQ(subscriptions->size(), 1u);

  std::vector<storage::shard_entry> stray;
  stray.push_back({column::meta, "rollout/" + staying, "x"});
  auto err = storage::import_shard_chunk(*new_owner_, moving_, std::move(stray), 5);
  EXPECT_EQ(err, storage::errc::invalid_record);
  EXPECT_NE(storage::describe(err).find("shard entry 0: a record not of shard 5"), std::string::npos)
      << storage::describe(err);
}
