// Encryption at rest: every file under the data directory is ciphertext
// when a key file is configured, the data reads back, and a directory is
// refused with another key, without its key, or plaintext with a key.
#include <sys/stat.h>

#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include "storage/errc.hpp"
#include "storage/file_encryption.hpp"
#include "storage/file_scan.hpp"
#include "storage/node_key.hpp"
#include "storage/store.hpp"
#include "tests/support/key_file.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin;
using healthtwin::testing::temp_dir;

namespace {

constexpr const char* secret_id = "PT-ENCRYPTION-PROBE-4711";
constexpr const char* secret_value = "SpO2=87.654321;HR=131.246802";

std::string write_key_file(const temp_dir& d, const std::string& name, char digit,
                           mode_t mode = 0600) {
  return healthtwin::testing::write_key_file(d.path() / name, std::string(64, digit), mode);
}

// Files under `dir` whose bytes, as stored, contain `needle`.
std::vector<std::string> files_containing(const std::string& dir, const std::string& needle) {
  storage::store_settings as_stored;  // no key: the raw bytes only
  as_stored.data_dir = dir;
  auto hits = storage::files_containing(as_stored, needle);
  EXPECT_TRUE(hits);
  return hits ? *hits : std::vector<std::string>{"<scan failed>"};
}

storage::store_settings settings_for(const std::string& dir, const std::string& key_file) {
  storage::store_settings s;
  s.data_dir = dir;
  s.shards = 16;
  s.encryption_key_file = key_file;
  return s;
}

// Writes the probe into every column family: some flushed to SST files,
// some left in the WAL only.
void write_probe(storage::store& db) {
  using storage::column;
  for (auto c : {column::registry, column::twins, column::series, column::alerts,
                 column::audit}) {
    storage::write_batch b{db};
    b.put(c, std::string{"k/"} + secret_id, std::string{secret_value} + "/" + secret_id);
    ASSERT_FALSE(db.write(b, true));
    ASSERT_FALSE(db.compact(c));  // flush: SST and MANIFEST
  }
  storage::write_batch wal_only{db};
  wal_only.put(column::log, std::string{"w/"} + secret_id, secret_value);
  ASSERT_FALSE(db.write(wal_only, true));
}

}  // namespace

TEST(node_key, refuses_malformed_and_exposed_key_files) {
  temp_dir d;
  auto good = write_key_file(d, "good.key", 'a');
  ASSERT_TRUE(storage::node_key::load(good));

  auto open_to_all = write_key_file(d, "open.key", 'a', 0644);
  auto e1 = storage::node_key::load(open_to_all);
  ASSERT_FALSE(e1);
  EXPECT_NE(storage::describe(e1.error()).find("open.key"), std::string::npos);
  EXPECT_NE(storage::describe(e1.error()).find("chmod 600"), std::string::npos);

  auto short_key = healthtwin::testing::write_key_file(d.path() / "short.key", "abcdef");
  auto e2 = storage::node_key::load(short_key);
  ASSERT_FALSE(e2);
  EXPECT_NE(storage::describe(e2.error()).find("64 hexadecimal digits"), std::string::npos);

  auto not_hex =
      healthtwin::testing::write_key_file(d.path() / "nothex.key", std::string(63, 'a') + "g");
  EXPECT_FALSE(storage::node_key::load(not_hex));

  EXPECT_FALSE(storage::node_key::load(d.str() + "/missing.key"));
}

TEST(node_key, derived_keys_differ_by_purpose_and_fingerprints_by_key) {
  storage::node_key::bytes raw{};
  raw.fill(7);
  auto k = storage::node_key::from_bytes(raw);
  EXPECT_NE(k.derive("a"), k.derive("b"));
  EXPECT_EQ(k.derive("a"), storage::node_key::from_bytes(raw).derive("a"));
  raw[0] = 8;
  EXPECT_NE(k.id(), storage::node_key::from_bytes(raw).id());
  EXPECT_EQ(k.id().size(), 16u);
}

TEST(file_encryption, random_reads_at_any_offset_decrypt_what_was_written) {
  temp_dir d;
  storage::node_key::bytes raw{};
  raw.fill(3);
  auto env = storage::make_encrypted_env(storage::node_key::from_bytes(raw));
  std::string data(300'000, '\0');
  std::mt19937 rng{42};
  for (auto& c : data)
    c = static_cast<char>(rng());
  auto path = d.str() + "/f";
  {
    std::unique_ptr<rocksdb::WritableFile> f;
    ASSERT_TRUE(env->NewWritableFile(path, &f, rocksdb::EnvOptions{}).ok());
    // Appends of odd sizes: the key stream must continue mid-block.
    for (size_t at = 0; at < data.size(); at += 4093)
      ASSERT_TRUE(f->Append(rocksdb::Slice{data.data() + at, std::min<size_t>(4093, data.size() - at)}).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  std::ifstream raw_in{path, std::ios::binary};
  std::string on_disk{std::istreambuf_iterator<char>{raw_in}, std::istreambuf_iterator<char>{}};
  EXPECT_EQ(on_disk.size(), data.size() + 4096);
  EXPECT_EQ(on_disk.find(data.substr(1000, 32)), std::string::npos);

  std::unique_ptr<rocksdb::RandomAccessFile> r;
  ASSERT_TRUE(env->NewRandomAccessFile(path, &r, rocksdb::EnvOptions{}).ok());
  for (uint64_t off : {0ul, 1ul, 15ul, 16ul, 17ul, 4095ul, 65'537ul, 299'990ul}) {
    size_t n = std::min<size_t>(777, data.size() - off);
    std::string scratch(n, '\0');
    rocksdb::Slice got;
    ASSERT_TRUE(r->Read(off, n, &got, scratch.data()).ok());
    EXPECT_EQ(got.ToString(), data.substr(off, n)) << "offset " << off;
  }
}

TEST(encryption_at_rest, no_identifier_or_value_in_plaintext_under_the_data_directory) {
  temp_dir keys;
  temp_dir plain_dir;
  temp_dir secret_dir;
  auto key = write_key_file(keys, "node.key", 'c');

  // Control: without a key the same writes are found, so the scan works.
  {
    auto db = storage::store::open(settings_for(plain_dir.str(), ""));
    ASSERT_TRUE(db) << storage::describe(db.error());
    write_probe(**db);
  }
  EXPECT_FALSE(files_containing(plain_dir.str(), secret_id).empty());
  EXPECT_FALSE(files_containing(plain_dir.str(), secret_value).empty());

  {
    auto db = storage::store::open(settings_for(secret_dir.str(), key));
    ASSERT_TRUE(db) << storage::describe(db.error());
    write_probe(**db);
  }
  // SST, WAL, MANIFEST, OPTIONS, CURRENT, info LOG: none holds the probe.
  EXPECT_EQ(files_containing(secret_dir.str(), secret_id), std::vector<std::string>{});
  EXPECT_EQ(files_containing(secret_dir.str(), secret_value), std::vector<std::string>{});

  // Everything reads back with the key, from SST and from WAL replay.
  auto db = storage::store::open(settings_for(secret_dir.str(), key));
  ASSERT_TRUE(db) << storage::describe(db.error());
  auto v = (*db)->get(storage::column::twins, std::string{"k/"} + secret_id);
  ASSERT_TRUE(v && *v);
  EXPECT_EQ(**v, std::string{secret_value} + "/" + secret_id);
  auto w = (*db)->get(storage::column::log, std::string{"w/"} + secret_id);
  ASSERT_TRUE(w && *w);
  EXPECT_EQ(**w, secret_value);
}

TEST(encryption_at_rest, a_directory_opens_only_with_the_key_it_was_created_with) {
  temp_dir keys;
  temp_dir plain_dir;
  temp_dir secret_dir;
  auto key = write_key_file(keys, "node.key", 'c');
  auto other = write_key_file(keys, "other.key", 'd');
  { ASSERT_TRUE(storage::store::open(settings_for(secret_dir.str(), key))); }
  { ASSERT_TRUE(storage::store::open(settings_for(plain_dir.str(), ""))); }

  auto expect_refused = [](const caf::expected<std::unique_ptr<storage::store>>& r,
                           const std::string& words) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), storage::errc::incompatible);
    EXPECT_NE(storage::describe(r.error()).find(words), std::string::npos)
        << storage::describe(r.error());
  };
  expect_refused(storage::store::open(settings_for(secret_dir.str(), "")),
                 "configure its encryption key file");
  expect_refused(storage::store::open(settings_for(secret_dir.str(), other)),
                 "not the configured key");
  expect_refused(storage::store::open(settings_for(plain_dir.str(), key)), "is not encrypted");
  EXPECT_TRUE(storage::store::open(settings_for(secret_dir.str(), key)));
}
