#include "storage/key_codec.hpp"

#include <gtest/gtest.h>

using namespace healthtwin;
using namespace healthtwin::storage::key_codec;

TEST(key_codec, integers_are_big_endian_so_keys_sort_numerically) {
  EXPECT_EQ(log_key(1), std::string("\0\0\0\0\0\0\0\1", 8));
  EXPECT_LT(log_key(255), log_key(256));
  EXPECT_LT(log_key(0xFFFF'FFFF), log_key(0x1'0000'0000));
  EXPECT_EQ(get_u64(log_key(0x0123456789ABCDEFull)), 0x0123456789ABCDEFull);
  std::string k;
  put_u32(k, 0xA1B2C3D4);
  EXPECT_EQ(get_u32(k), 0xA1B2C3D4u);
  EXPECT_EQ(get_u64("short"), 0u);
}

TEST(key_codec, twin_keys_start_with_the_shard) {
  auto k = twin_key(0x0102, models::twin_kind::patient, "tenants/h/patients/p");
  EXPECT_EQ(k.substr(0, 3), std::string("\x01\x02p", 3));
  EXPECT_EQ(k.substr(3), "tenants/h/patients/p");
}

TEST(key_codec, series_chunks_of_a_metric_share_a_prefix_and_sort_by_number) {
  auto prefix = series_prefix(7, "tenants/h/patients/p", 2);
  auto c1 = series_key(7, "tenants/h/patients/p", 2, 1);
  auto c300 = series_key(7, "tenants/h/patients/p", 2, 300);
  EXPECT_EQ(c1.substr(0, prefix.size()), prefix);
  EXPECT_LT(c1, c300);
  // A patient whose name extends another's never falls inside its range.
  auto other = series_key(7, "tenants/h/patients/p2", 2, 0);
  EXPECT_NE(other.substr(0, prefix.size()), prefix);
}

TEST(key_codec, alert_keys_separate_records_index_and_events) {
  EXPECT_EQ(alert_key('a', 1, "p", "x")[0], 'a');
  EXPECT_EQ(alert_key('x', 1, "p", "x")[0], 'x');
  EXPECT_EQ(alert_event_key(5)[0], 'e');
  EXPECT_LT(alert_event_key(5), alert_event_key(6));
}
