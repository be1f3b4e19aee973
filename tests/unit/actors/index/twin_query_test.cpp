#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "actors/index/twin_index.hpp"
#include "actors/index/twin_query.hpp"

using namespace healthtwin;
using actors::patient_summary;
using actors::twin_filter;
using actors::twin_order;
using models::news2_band;
using models::priority;

namespace {

patient_summary summary(std::string ward, int news2, priority p = priority::none,
                        uint32_t alerts = 0, bool complete = true) {
  patient_summary s;
  s.ward = std::move(ward);
  s.bed = "1";
  s.news2_known = news2 >= 0;
  s.news2 = static_cast<uint8_t>(std::max(news2, 0));
  s.news2_complete = complete;
  s.news2_band = news2 >= 7 ? news2_band::high : news2 >= 5 ? news2_band::medium : news2_band::low;
  s.alert_priority = p;
  s.open_alerts = alerts;
  return s;
}

bool match(std::string_view filter, const patient_summary& s, std::string_view name = "tenants/h1/patients/p1") {
  std::string error;
  auto f = twin_filter::parse(filter, error);
  EXPECT_TRUE(f) << filter << ": " << error;
  return f && f->matches(name, s);
}

std::string parse_error(std::string_view filter) {
  std::string error;
  EXPECT_FALSE(twin_filter::parse(filter, error)) << filter;
  return error;
}

}  // namespace

TEST(twin_filter, the_issue_example_selects_by_ward_news2_and_alert_priority) {
  auto f = R"(ward = "ICU-3" AND news2 >= 5 AND alerts.priority = HIGH)";
  EXPECT_TRUE(match(f, summary("ICU-3", 6, priority::high, 1)));
  EXPECT_FALSE(match(f, summary("ICU-3", 4, priority::high, 1)));
  EXPECT_FALSE(match(f, summary("ICU-2", 6, priority::high, 1)));
  EXPECT_FALSE(match(f, summary("ICU-3", 6, priority::medium, 1)));
}

TEST(twin_filter, empty_matches_everything) {
  EXPECT_TRUE(match("", summary("A", -1)));
  EXPECT_TRUE(match("   ", summary("A", -1)));
}

TEST(twin_filter, or_binds_tighter_than_and_as_in_aip_160) {
  // a AND b OR c  ==  a AND (b OR c)
  auto f = R"(ward = "A" AND news2 >= 7 OR alerts.count > 0)";
  EXPECT_FALSE(match(f, summary("B", 0, priority::low, 3)));  // (a AND b) OR c would match
  EXPECT_TRUE(match(f, summary("A", 0, priority::low, 3)));
  EXPECT_TRUE(match(f, summary("A", 8)));
  EXPECT_FALSE(match(f, summary("A", 2)));
}

TEST(twin_filter, not_parentheses_and_minus) {
  EXPECT_TRUE(match(R"(NOT ward = "A")", summary("B", 0)));
  EXPECT_FALSE(match(R"(-ward = "A")", summary("A", 0)));
  EXPECT_TRUE(match(R"((ward = "A" OR ward = "B") AND NOT (news2 < 3))", summary("B", 3)));
  EXPECT_FALSE(match(R"((ward = "A" OR ward = "B") AND NOT (news2 < 3))", summary("B", 2)));
}

TEST(twin_filter, every_operator_on_numbers_and_enums) {
  auto s = summary("A", 5, priority::medium, 2);
  EXPECT_TRUE(match("news2 = 5", s));
  EXPECT_TRUE(match("news2 != 4", s));
  EXPECT_TRUE(match("news2 < 6", s));
  EXPECT_TRUE(match("news2 <= 5", s));
  EXPECT_TRUE(match("news2 > 4", s));
  EXPECT_FALSE(match("news2 > 5", s));
  EXPECT_TRUE(match("news2 > -1", s));
  EXPECT_TRUE(match("alerts.priority >= MEDIUM", s));
  EXPECT_FALSE(match("alerts.priority >= HIGH", s));
  EXPECT_TRUE(match("alerts.priority = PRIORITY_MEDIUM", s));
  EXPECT_TRUE(match("alerts.count = 2", s));
  EXPECT_TRUE(match("news2.band = MEDIUM", s));
  EXPECT_TRUE(match("news2.band > LOW_MEDIUM", s));
  EXPECT_TRUE(match("news2.band = NEWS2_BAND_MEDIUM", s));
  EXPECT_TRUE(match("news2.complete = true", s));
  EXPECT_FALSE(match("news2.complete = false", s));
  EXPECT_TRUE(match("alerts.priority = NONE", summary("A", 0)));
}

TEST(twin_filter, strings_compare_exactly_or_by_prefix) {
  auto s = summary("ICU-3", 0);
  EXPECT_TRUE(match(R"(ward = "ICU*")", s));
  EXPECT_FALSE(match(R"(ward != "ICU*")", s));
  EXPECT_FALSE(match(R"(ward = "icu-3")", s));
  EXPECT_TRUE(match(R"(name = "tenants/h1/patients/p1")", s));
  EXPECT_TRUE(match(R"(ward = "say \"hi\"")", summary("say \"hi\"", 0)));
}

TEST(twin_filter, a_patient_never_scored_matches_no_news2_comparison) {
  auto s = summary("A", -1);
  EXPECT_FALSE(match("news2 >= 0", s));
  EXPECT_FALSE(match("news2 < 100", s));
  EXPECT_FALSE(match("news2.band = LOW", s));
  EXPECT_TRUE(match("NOT news2 >= 0", s));
}

TEST(twin_filter, errors_say_what_and_where) {
  EXPECT_NE(parse_error("colour = \"red\"").find("unknown field 'colour' at offset 0"), std::string::npos);
  EXPECT_NE(parse_error("news2 >= \"5\"").find("'news2' takes a whole number"), std::string::npos);
  EXPECT_NE(parse_error("ward = ICU").find("'ward' takes a quoted string"), std::string::npos);
  EXPECT_NE(parse_error("alerts.priority = URGENT").find("NONE, LOW, MEDIUM or HIGH"), std::string::npos);
  EXPECT_NE(parse_error("news2 >= 5 AND").find("expected a field at offset 14"), std::string::npos);
  EXPECT_NE(parse_error("(news2 >= 5").find("missing ')'"), std::string::npos);
  EXPECT_NE(parse_error("ward = \"A").find("unterminated string"), std::string::npos);
  EXPECT_NE(parse_error("news2 ~ 5").find("unexpected character '~'"), std::string::npos);
  EXPECT_NE(parse_error("news2 >= 5 news2").find("unexpected 'news2' at offset 11"), std::string::npos);
  EXPECT_NE(parse_error("news2 = 99999999999999999999").find("in range"), std::string::npos);
  EXPECT_NE(parse_error("ward < \"A*\"").find("prefix"), std::string::npos);
  EXPECT_NE(parse_error("news2.complete > true").find("only = or !="), std::string::npos);
}

TEST(twin_filter, errors_quote_a_bounded_prefix_of_long_tokens) {
  auto word = std::string(1990, 'w');
  for (auto text : {word + " = 1", "news2 = \"" + word + "\" ", "news2 >= 5 " + word})
    EXPECT_LE(parse_error(text).size(), 256u) << parse_error(text).substr(0, 100);
  EXPECT_NE(parse_error(word + " = 1").find("(1990 bytes)"), std::string::npos);
  std::string error;
  EXPECT_FALSE(healthtwin::actors::twin_order::parse(word, error));
  EXPECT_LT(error.size(), 200u);
}

TEST(twin_filter, hostile_filters_are_bounded) {
  EXPECT_NE(parse_error(std::string(2'001, ' ')).find("longer than 2000 bytes"), std::string::npos);
  EXPECT_NE(parse_error(std::string(40, '(') + "news2 = 1" + std::string(40, ')')).find("deeper"),
            std::string::npos);
  std::string many = "news2 = 1";
  for (int i = 0; i < 70; ++i)
    many += " OR news2 = 1";
  EXPECT_NE(parse_error(many).find("more than 64 comparisons"), std::string::npos);
  std::string nots;
  for (int i = 0; i < 40; ++i)
    nots += "NOT ";
  EXPECT_NE(parse_error(nots + "news2 = 1").find("deeper"), std::string::npos);
}

TEST(twin_order, orders_by_fields_then_name) {
  std::vector<std::pair<std::string, patient_summary>> v{
      {"tenants/h1/patients/c", summary("B", 3)},
      {"tenants/h1/patients/a", summary("A", 7)},
      {"tenants/h1/patients/b", summary("A", 3)},
      {"tenants/h1/patients/d", summary("A", -1)},
  };
  auto names = [&](std::string_view order) {
    std::string error;
    auto o = twin_order::parse(order, error);
    EXPECT_TRUE(o) << error;
    auto copy = v;
    std::sort(copy.begin(), copy.end(), [&](auto& x, auto& y) { return o->before(x, y); });
    std::string out;
    for (auto& [n, _] : copy)
      out += n.back();
    return out;
  };
  EXPECT_EQ(names(""), "abcd");
  EXPECT_EQ(names("news2 desc"), "abcd");
  EXPECT_EQ(names("news2"), "dbca");
  EXPECT_EQ(names("ward, news2 desc"), "abdc");
  EXPECT_EQ(names("ward desc, name desc"), "cdba");
}

TEST(twin_order, errors_name_the_field) {
  std::string error;
  EXPECT_FALSE(twin_order::parse("news2.band", error));
  EXPECT_NE(error.find("cannot order by 'news2.band'"), std::string::npos);
  EXPECT_FALSE(twin_order::parse("news2 up", error));
  EXPECT_NE(error.find("expected ',' or the end"), std::string::npos);
  EXPECT_FALSE(twin_order::parse("news2,", error));
}

TEST(twin_index, only_the_registry_adds_patients_so_an_erased_one_stays_gone) {
  actors::twin_index index;
  index.set_news2("tenants/h1/patients/p1", 5, true, news2_band::medium);
  EXPECT_TRUE(index.tenant("h1").empty());
  index.set_registry("tenants/h1/patients/p1", "ICU", "3");
  index.set_news2("tenants/h1/patients/p1", 5, true, news2_band::medium);
  index.set_alerts("tenants/h1/patients/p1", priority::high, 2);
  index.seed("tenants/h1/patients/p1", actors::patient_summary{"stale", ""});
  index.seed("tenants/h1/patients/p2", actors::patient_summary{"WARD", "1"});
  index.set_registry("tenants/h2/patients/p1", "OTHER", "1");
  auto h1 = index.tenant("h1");
  ASSERT_EQ(h1.size(), 2u);
  EXPECT_EQ(h1[0].second.ward, "ICU");
  EXPECT_EQ(h1[0].second.news2, 5);
  EXPECT_EQ(h1[0].second.alert_priority, priority::high);
  EXPECT_EQ(h1[1].first, "tenants/h1/patients/p2");
  index.remove("tenants/h1/patients/p1");
  index.set_alerts("tenants/h1/patients/p1", priority::none, 0);
  EXPECT_EQ(index.tenant("h1").size(), 1u);
  EXPECT_EQ(index.tenant("h2").size(), 1u);
}

// A page selected in the index is the same as sorting every match and
// taking the first after the cursor, whatever the limit; the count is every
// match, cursor or not.
TEST(twin_index, select_keeps_the_first_page_after_the_cursor_and_counts_every_match) {
  actors::twin_index index;
  std::vector<std::pair<std::string, patient_summary>> all;
  for (int i = 0; i < 200; ++i) {
    auto name = "tenants/h1/patients/p" + std::to_string(i);
    auto s = summary(i % 3 == 0 ? "ICU-1" : "ICU-2", (i * 7) % 13 - 1);  // some never scored
    index.set_registry(name, s.ward, s.bed);
    index.set_news2(name, s.news2, true, s.news2_band);
    if (!s.news2_known)
      s = summary(s.ward, 0), s.news2_known = true;  // set_news2 scored it
    all.emplace_back(name, s);
  }
  index.set_registry("tenants/h2/patients/p1", "ICU-1", "1");  // another tenant
  std::string error;
  auto filter = twin_filter::parse(R"(ward = "ICU-1")", error);
  auto order = twin_order::parse("news2 desc, name", error);
  ASSERT_TRUE(filter && order) << error;
  std::vector<std::pair<std::string, patient_summary>> expected;
  for (auto& p : all)
    if (filter->matches(p.first, p.second))
      expected.push_back(p);
  std::sort(expected.begin(), expected.end(), [&](auto& a, auto& b) { return order->before(a, b); });
  auto keep = [&](std::string_view n, const patient_summary& s) { return filter->matches(n, s); };
  auto before = [&](std::string_view a, const patient_summary& x, std::string_view b, const patient_summary& y) {
    return order->before(a, x, b, y);
  };
  for (size_t limit : {0u, 1u, 7u, 67u, 500u}) {
    for (size_t from : {size_t{0}, size_t{5}, expected.size() - 1}) {
      actors::twin_index::summary_test after;
      if (from > 0)
        after = [&, cursor = expected[from - 1]](std::string_view n, const patient_summary& s) {
          return order->before(cursor.first, cursor.second, n, s);
        };
      auto page = index.select("h1", keep, after, before, limit);
      EXPECT_EQ(page.matched, expected.size());
      auto end = std::min(expected.size(), from + limit);
      ASSERT_EQ(page.first.size(), end - from) << "limit " << limit << " from " << from;
      for (size_t i = from; i < end; ++i)
        EXPECT_EQ(page.first[i - from].first, expected[i].first) << "limit " << limit << " from " << from;
    }
  }
  EXPECT_EQ(index.select("nobody", keep, {}, before, 10).matched, 0u);
}
