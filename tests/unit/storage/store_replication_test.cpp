// store::apply_replicated: a committed batch and its index are applied
// together; a batch at or below the index is skipped, across a restart too;
// bytes that are not a batch are refused without touching the store.

#include <gtest/gtest.h>

#include "storage/errc.hpp"
#include "storage/store.hpp"
#include "tests/support/temp_dir.hpp"

namespace healthtwin::storage {
namespace {

// Takes the bytes of the batches a store writes.
struct capture final : write_replicator {
  std::string last;
  caf::error replicate(std::string_view batch) override {
    last = std::string{batch};
    return caf::none;
  }
};

class store_replication_test : public ::testing::Test {
protected:
  void SetUp() override {
    settings_.data_dir = dir_.str();
    settings_.shards = 16;
    open();
  }
  void open() {
    store_.reset();
    auto s = store::open(settings_);
    ASSERT_TRUE(s) << describe(s.error());
    store_ = std::move(*s);
  }
  // The bytes of a batch putting registry[key] = value.
  std::string batch(const std::string& key, const std::string& value) {
    capture c;
    store_->replicate_through(&c);
    write_batch wb{*store_};
    wb.put(column::registry, key, value);
    EXPECT_FALSE(store_->write(wb, true));
    store_->replicate_through(nullptr);
    return c.last;
  }
  std::optional<std::string> get(const std::string& key) { return *store_->get(column::registry, key); }

  testing::temp_dir dir_;
  store_settings settings_;
  std::unique_ptr<store> store_;
};

TEST_F(store_replication_test, a_replicated_write_reaches_the_store_only_when_applied) {
  auto a = batch("k", "first");
  EXPECT_EQ(get("k"), std::nullopt) << "write() handed the batch to the replicator only";
  EXPECT_EQ(store_->replicated_index(), 0u);
  ASSERT_FALSE(store_->apply_replicated(5, a));
  EXPECT_EQ(get("k"), "first");
  EXPECT_EQ(store_->replicated_index(), 5u);
}

TEST_F(store_replication_test, batches_at_or_below_the_index_are_skipped_across_a_restart) {
  auto a = batch("k", "first");
  auto b = batch("k", "second");
  ASSERT_FALSE(store_->apply_replicated(5, a));
  ASSERT_FALSE(store_->apply_replicated(5, b));
  ASSERT_FALSE(store_->apply_replicated(4, b));
  EXPECT_EQ(get("k"), "first");
  open();
  EXPECT_EQ(store_->replicated_index(), 5u);
  ASSERT_FALSE(store_->apply_replicated(5, b));
  EXPECT_EQ(get("k"), "first");
  ASSERT_FALSE(store_->apply_replicated(6, b));
  EXPECT_EQ(get("k"), "second");
}

TEST_F(store_replication_test, bytes_that_are_not_a_batch_are_refused) {
  EXPECT_EQ(store_->apply_replicated(1, "short"), errc::corruption);
  auto a = batch("k", "first");
  std::string damaged = a.substr(0, 12) + std::string(20, '\xff');
  EXPECT_TRUE(store_->apply_replicated(2, damaged));
  EXPECT_EQ(get("k"), std::nullopt);
  EXPECT_EQ(store_->replicated_index(), 0u);
}

}  // namespace
}  // namespace healthtwin::storage
