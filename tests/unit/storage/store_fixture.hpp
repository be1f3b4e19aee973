#pragma once

#include <memory>

#include <gtest/gtest.h>

#include "storage/store.hpp"
#include "tests/support/temp_dir.hpp"

namespace healthtwin::testing {

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
