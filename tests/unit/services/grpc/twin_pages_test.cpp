#include "services/grpc/twin_pages.hpp"

#include <gtest/gtest.h>

using namespace healthtwin;
using namespace healthtwin::services;

namespace {

summary_row row(const std::string& id, const std::string& ward, uint8_t news2) {
  actors::patient_summary s;
  s.ward = ward;
  s.bed = "7";
  s.news2_known = true;
  s.news2 = news2;
  s.alert_priority = models::priority::medium;
  s.open_alerts = 2;
  return {"tenants/h1/patients/" + id, s};
}

actors::twin_order order(const std::string& text) {
  std::string error;
  auto o = actors::twin_order::parse(text, error);
  EXPECT_TRUE(o) << error;
  return std::move(*o);
}

}  // namespace

TEST(twin_pages, a_token_carries_the_last_patient_and_its_summary) {
  auto last = row("p7", "ICU \"3\"|.", 6);
  auto token = page_token(42, last);
  auto back = parse_page_token(token, 42);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->first, last.first);
  EXPECT_EQ(back->second.ward, last.second.ward);
  EXPECT_EQ(back->second.news2, 6);
  EXPECT_EQ(back->second.alert_priority, models::priority::medium);
  EXPECT_EQ(back->second.open_alerts, 2u);
}

TEST(twin_pages, tokens_of_another_query_or_tampered_ones_are_refused) {
  auto token = page_token(42, row("p7", "ICU-3", 6));
  EXPECT_FALSE(parse_page_token(token, 43));
  EXPECT_FALSE(parse_page_token(token + "0", 42));   // odd length
  EXPECT_FALSE(parse_page_token(token + "zz", 42));  // not hex
  EXPECT_FALSE(parse_page_token(token + "00", 42));  // not a summary any more
  EXPECT_FALSE(parse_page_token("", 42));
  EXPECT_FALSE(parse_page_token(token + std::string(4'096, 'a'), 42));
  internal::PatientSummary device;
  device.set_name("tenants/h1/devices/m1");
  auto forged = page_token(42, from_peer(device));
  EXPECT_FALSE(parse_page_token(forged, 42));  // names no patient
}

TEST(twin_pages, the_next_page_starts_right_after_the_cursor_even_when_it_is_gone) {
  auto o = order("news2 desc");
  std::vector<summary_row> rows{row("a", "W", 9), row("b", "W", 7), row("c", "W", 7), row("d", "W", 3)};
  auto all = rows;
  drop_through(rows, all[1], o);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].first, all[2].first);
  // The cursor's patient was erased, or re-scored: the rest still follow it.
  std::vector<summary_row> without{all[0], all[2], all[3]};
  drop_through(without, all[1], o);
  ASSERT_EQ(without.size(), 2u);
  EXPECT_EQ(without[0].first, all[2].first);
  drop_through(without, row("z", "W", 0), o);
  EXPECT_TRUE(without.empty());
}
