#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "storage/store.hpp"
#include "tests/support/temp_dir.hpp"

namespace healthtwin::testing {

/// A store in `dir` with `shards`, encrypted under the key in `key_file`
/// (plaintext when empty); null after a failed expectation.
inline std::unique_ptr<storage::store> open_store(const temp_dir& dir, const std::string& key_file,
                                                  uint32_t shards) {
  storage::store_settings s;
  s.data_dir = dir.str();
  s.shards = shards;
  s.sync_wal = false;
  s.encryption_key_file = key_file;
  auto opened = storage::store::open(s);
  EXPECT_TRUE(opened) << storage::describe(opened.error());
  return opened ? std::move(*opened) : nullptr;
}

/// Opens a fresh store in a temp dir; reopen() simulates a restart.
class store_fixture : public ::testing::Test {
protected:
  void SetUp() override { reopen(); }

  void reopen() {
    db_.reset();
    storage::store_settings s;
    s.data_dir = dir_.str();
    s.shards = shards_;
    s.sync_wal = false;
    auto opened = storage::store::open(s);
    ASSERT_TRUE(opened) << storage::describe(opened.error());
    db_ = std::move(*opened);
  }

  storage::store& db() { return *db_; }

  temp_dir dir_;
  uint32_t shards_ = 16;
  std::unique_ptr<storage::store> db_;
};

}  // namespace healthtwin::testing
