#include "storage/replica_files.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::storage;

TEST(replica_files, names_are_plain_file_names) {
  EXPECT_TRUE(valid_data_file_name("000123.sst"));
  EXPECT_TRUE(valid_data_file_name("MANIFEST-000005"));
  EXPECT_FALSE(valid_data_file_name(""));
  EXPECT_FALSE(valid_data_file_name("."));
  EXPECT_FALSE(valid_data_file_name(".."));
  EXPECT_FALSE(valid_data_file_name("../db/CURRENT"));
  EXPECT_FALSE(valid_data_file_name("/etc/passwd"));
  EXPECT_FALSE(valid_data_file_name(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_data_file_name(std::string(256, 'a')));
  EXPECT_TRUE(valid_data_file_name(std::string(255, 'a')));
}

TEST(replica_files, only_table_files_held_at_the_same_size_stay_behind) {
  std::map<std::string, uint64_t> holds{{"000010.sst", 500}, {"MANIFEST-000005", 300}};
  EXPECT_FALSE(replica_lacks("000010.sst", 500, holds));
  EXPECT_TRUE(replica_lacks("000010.sst", 501, holds));   // not the file it holds
  EXPECT_TRUE(replica_lacks("000011.sst", 500, holds));   // not held
  EXPECT_TRUE(replica_lacks("MANIFEST-000005", 300, holds));  // changes: always sent
  EXPECT_TRUE(replica_lacks("CURRENT", 16, {}));
  EXPECT_FALSE(immutable_data_file(".sst"));
  EXPECT_TRUE(immutable_data_file("1.sst"));
}
