// Per-patient data keys: values sealed under a patient's key read back,
// are bound to that key, and become unreadable everywhere the moment the
// key is destroyed; the patient's key is never recreated.
#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "storage/errc.hpp"
#include "storage/node_key.hpp"
#include "storage/series_codec.hpp"
#include "storage/series_table.hpp"
#include "storage/store.hpp"
#include "storage/twin_table.hpp"
#include "tests/support/key_file.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin;
using healthtwin::testing::temp_dir;

namespace {

class patient_keys_test : public ::testing::Test {
protected:
  void SetUp() override {
    key_file_ = healthtwin::testing::write_key_file(keys_.path() / "node.key", std::string(64, 'e'));
    reopen();
  }

  void reopen(bool encrypted = true) {
    db_.reset();
    storage::store_settings s;
    s.data_dir = dir_.str();
    s.shards = 16;
    s.sync_wal = false;
    if (encrypted)
      s.encryption_key_file = key_file_;
    auto opened = storage::store::open(s);
    ASSERT_TRUE(opened) << storage::describe(opened.error());
    db_ = std::move(*opened);
  }

  storage::store& db() { return *db_; }

  // A store in `dir` without a key file.
  static std::unique_ptr<storage::store> open_plaintext(const temp_dir& dir) {
    storage::store_settings s;
    s.data_dir = dir.str();
    s.shards = 16;
    auto opened = storage::store::open(s);
    return opened ? std::move(*opened) : nullptr;
  }

  temp_dir keys_;
  temp_dir dir_;
  std::string key_file_;
  std::unique_ptr<storage::store> db_;
};

const std::string alice = "tenants/h1/patients/alice";
const std::string bob = "tenants/h1/patients/bob";

}  // namespace

TEST_F(patient_keys_test, a_sealed_value_reads_back_across_a_restart) {
  auto sealed = db().seal(alice, "SpO2 91");
  ASSERT_TRUE(sealed) << storage::describe(sealed.error());
  EXPECT_EQ(sealed->find("SpO2"), std::string::npos);
  EXPECT_GT(sealed->size(), 7u + 36u);
  reopen();
  auto plain = db().unseal(*sealed);
  ASSERT_TRUE(plain) << storage::describe(plain.error());
  EXPECT_EQ(*plain, "SpO2 91");
}

TEST_F(patient_keys_test, patients_have_their_own_keys_and_altered_values_are_refused) {
  auto a = db().seal(alice, "same value");
  auto b = db().seal(bob, "same value");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->substr(1, 8), b->substr(1, 8));  // different key refs
  // Moving Bob's ciphertext under Alice's key ref fails authentication.
  auto moved = *b;
  moved.replace(1, 8, a->substr(1, 8));
  auto r = db().unseal(moved);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), storage::errc::invalid_record);
  for (size_t i = 0; i < a->size(); ++i) {
    auto flipped = *a;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x10);
    EXPECT_FALSE(db().unseal(flipped)) << "byte " << i;
  }
}

TEST_F(patient_keys_test, destroying_the_key_makes_every_copy_unreadable_at_once) {
  storage::series_chunk_builder chunk;
  for (int i = 0; i < 10; ++i)
    chunk.append(1'000 * i, 97.0);
  storage::series_table series{db()};
  ASSERT_FALSE(series.put_chunk(alice, 3, 0, chunk.finish()));
  storage::twin_table snapshots{db(), storage::column::twins};
  auto sealed = snapshots.stored_value(models::twin_kind::patient, alice, "alice's snapshot");
  ASSERT_TRUE(sealed);
  storage::write_batch batch{db()};
  snapshots.put(batch, models::twin_kind::patient, alice, *sealed);
  ASSERT_FALSE(db().write(batch, false));
  // A copy made before the erasure (an old table file, a backup).
  auto copy = db().seal(alice, "alice's value");
  ASSERT_TRUE(copy);
  ASSERT_TRUE(db().seal(bob, "bob's value"));

  ASSERT_FALSE(db().destroy_patient_key(alice));
  EXPECT_TRUE(db().patient_erased(alice));
  EXPECT_FALSE(db().patient_erased(bob));
  for (int round = 0; round < 2; ++round) {  // before and after a restart
    auto r = db().unseal(*copy);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), storage::errc::erased);
    std::vector<storage::sample> out;
    EXPECT_EQ(storage::series_table{db()}.read(alice, 3, 0, 100'000, 1, out),
              storage::errc::erased);
    auto snap = storage::twin_table{db(), storage::column::twins}.get(models::twin_kind::patient,
                                                                      alice);
    ASSERT_FALSE(snap);
    EXPECT_EQ(snap.error(), storage::errc::erased);
    // The key is never recreated for the erased patient.
    auto again = db().seal(alice, "new data");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), storage::errc::erased);
    EXPECT_TRUE(db().seal(bob, "bob goes on"));
    reopen();
  }
}

TEST_F(patient_keys_test, a_plaintext_directory_stores_values_as_they_are_but_marks_erasure) {
  temp_dir plain_dir;
  auto plain = open_plaintext(plain_dir);
  ASSERT_TRUE(plain);
  auto v = plain->seal(alice, "value");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, "value");
  ASSERT_FALSE(plain->destroy_patient_key(alice));
  EXPECT_TRUE(plain->patient_erased(alice));
  EXPECT_EQ(plain->pseudonym(alice).size(), 16u);
  EXPECT_NE(plain->pseudonym(alice), plain->pseudonym(bob));
}

TEST_F(patient_keys_test, a_key_registered_with_the_patient_is_the_one_values_are_sealed_with) {
  storage::write_batch b{db()};
  ASSERT_FALSE(db().add_patient_key(b, alice));
  auto before = db().get(storage::column::keys, "n" + alice);
  ASSERT_TRUE(before);
  EXPECT_FALSE(*before);  // nothing until the batch commits
  ASSERT_FALSE(db().write(b, true));
  auto ref = db().get(storage::column::keys, "n" + alice);
  ASSERT_TRUE(ref && *ref);
  reopen();
  auto sealed = db().seal(alice, "value");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->substr(1, 8), **ref);
  auto plain = db().unseal(*sealed);
  ASSERT_TRUE(plain);
  EXPECT_EQ(*plain, "value");
}

// Erasure markers on disk are named by pseudonym: it must stay the keyed
// hash it always was (HMAC-SHA256 under the derived pseudonym key), or an
// erased patient would come back. Without a node key: the pseudonym_key
// tests below (a directory's own secret; the zero key of older ones kept).
TEST_F(patient_keys_test, pseudonyms_are_the_keyed_hash_stored_markers_were_named_by) {
  storage::node_key::bytes raw;
  raw.fill(0xee);  // the key file's 64 'e' digits
  auto key = storage::node_key::from_bytes(raw).derive("healthtwin patient pseudonyms v1");
  EXPECT_EQ(db().pseudonym(alice), storage::short_hex(storage::hmac_sha256(key, alice)));
  EXPECT_EQ(db().pseudonym(bob), storage::short_hex(storage::hmac_sha256(key, bob)));
}

namespace {

// A plaintext store in `dir` (with `pseudonym_key_file` when given).
std::unique_ptr<storage::store> plaintext_store(const temp_dir& dir, const std::string& pseudonym_key_file = {}) {
  storage::store_settings s;
  s.data_dir = dir.str();
  s.shards = 16;
  s.sync_wal = false;
  s.pseudonym_key_file = pseudonym_key_file;
  auto opened = storage::store::open(s);
  EXPECT_TRUE(opened) << storage::describe(opened.error());
  return opened ? std::move(*opened) : nullptr;
}

}  // namespace

TEST(pseudonym_key, two_plaintext_directories_key_pseudonyms_with_their_own_random_secret) {
  temp_dir a, b;
  auto pa = plaintext_store(a)->pseudonym("tenants/h1/patients/p1");
  auto pb = plaintext_store(b)->pseudonym("tenants/h1/patients/p1");
  EXPECT_NE(pa, pb);  // not recomputable from a guessed id on another node
  EXPECT_NE(pa, storage::short_hex(storage::hmac_sha256({}, "tenants/h1/patients/p1")));
  EXPECT_EQ(plaintext_store(a)->pseudonym("tenants/h1/patients/p1"), pa);  // kept across opens
}

TEST(pseudonym_key, members_sharing_a_pseudonym_key_file_agree_and_another_file_is_refused) {
  temp_dir keys, a, b, c;
  auto shared = healthtwin::testing::write_key_file(keys.path() / "p.key", std::string(64, '7'));
  auto other = healthtwin::testing::write_key_file(keys.path() / "q.key", std::string(64, '8'));
  auto sa = plaintext_store(a, shared), sb = plaintext_store(b, shared);
  EXPECT_EQ(sa->pseudonym("tenants/h1/patients/p1"), sb->pseudonym("tenants/h1/patients/p1"));
  EXPECT_EQ(sa->pseudonym_key_id(), sb->pseudonym_key_id());
  EXPECT_NE(plaintext_store(c)->pseudonym_key_id(), sa->pseudonym_key_id());
  sa.reset();
  storage::store_settings s;
  s.data_dir = a.str();
  s.shards = 16;
  s.pseudonym_key_file = other;
  auto refused = storage::store::open(s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), storage::errc::incompatible);
}

TEST(pseudonym_key, a_directory_from_before_keeps_the_fixed_key_its_markers_are_named_with) {
  temp_dir dir;
  {
    auto s = plaintext_store(dir);
    storage::write_batch b{*s};
    b.erase(storage::column::keys, "s:pseudonym-key");  // as a directory written before
    ASSERT_FALSE(s->write(b, true));
  }
  auto legacy = storage::short_hex(storage::hmac_sha256({}, "tenants/h1/patients/p1"));
  EXPECT_EQ(plaintext_store(dir)->pseudonym("tenants/h1/patients/p1"), legacy);
  EXPECT_EQ(plaintext_store(dir)->pseudonym("tenants/h1/patients/p1"), legacy);
}
