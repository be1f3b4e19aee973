#include "services/grpc/field_rules.hpp"

#include <gtest/gtest.h>

#include "healthtwin/v1/twin.pb.h"

using namespace healthtwin::services;

namespace {

google::protobuf::FieldMask mask(std::initializer_list<std::string> paths) {
  google::protobuf::FieldMask m;
  for (auto& p : paths)
    m.add_paths(p);
  return m;
}

}  // namespace

TEST(field_rules, a_read_mask_path_with_an_empty_segment_is_refused) {
  auto d = healthtwin::v1::PatientTwin::descriptor();
  EXPECT_TRUE(check_mask(mask({"news2.total", "name"}), "read_mask", d).empty());
  for (auto bad : {"news2..total", ".news2", "news2.", "", "News2", "news2 total"}) {
    auto v = check_mask(mask({bad}), "read_mask", d);
    ASSERT_EQ(v.size(), 1u) << bad;
    EXPECT_EQ(v[0].field, "read_mask.paths[0]");
  }
}

TEST(field_rules, a_mask_violation_quotes_a_bounded_prefix_of_the_path) {
  auto d = healthtwin::v1::PatientTwin::descriptor();
  for (size_t n : {size_t{200}, size_t{4000}, size_t{1} << 20}) {
    auto v = check_mask(mask({std::string(n, 'a')}), "read_mask", d);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_LT(v[0].description.size(), 200u) << n;
    EXPECT_NE(v[0].description.find("(" + std::to_string(n) + " bytes)"), std::string::npos);
  }
}

TEST(field_rules, an_update_mask_takes_only_the_fields_that_can_change) {
  auto allowed = std::vector<std::string_view>{"ward", "bed"};
  EXPECT_TRUE(check_mask(mask({"ward"}), "update_mask", nullptr, allowed, true).empty());
  EXPECT_EQ(check_mask(mask({}), "update_mask", nullptr, allowed, true).size(), 1u);
  auto v = check_mask(mask({"name"}), "update_mask", nullptr, allowed, true);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].description.find("'name' cannot be changed (ward, bed)"), std::string::npos);
}

TEST(field_rules, regions_are_empty_or_identifiers) {
  EXPECT_FALSE(check_region("", "home_region"));
  EXPECT_FALSE(check_region("eu-west", "home_region"));
  EXPECT_TRUE(check_region("UPPER_case!", "home_region"));
  EXPECT_TRUE(check_region(std::string(64, 'a'), "home_region"));
}

TEST(field_rules, notes_keep_line_breaks_but_no_other_control_characters) {
  EXPECT_TRUE(valid_note("at the bedside\n\tHR settled", 1000));
  EXPECT_FALSE(valid_note("bell\x07", 1000));
  EXPECT_FALSE(valid_note(std::string(1001, 'a'), 1000));
  EXPECT_TRUE(valid_label("ICU-3", 64));
  EXPECT_FALSE(valid_label("", 64));
  EXPECT_TRUE(valid_label("", 64, true));
  EXPECT_FALSE(valid_label("a\nb", 64));
}

TEST(field_rules, member_names_and_addresses) {
  EXPECT_TRUE(valid_member_name("healthtwin-0.healthtwin.ns.svc"));
  EXPECT_FALSE(valid_member_name(""));
  EXPECT_FALSE(valid_member_name("n\x01"));
  EXPECT_FALSE(valid_member_name(std::string(254, 'a')));
  EXPECT_TRUE(valid_host_port("127.0.0.1:7001"));
  EXPECT_TRUE(valid_host_port("[::1]:7001"));
  EXPECT_TRUE(valid_host_port("node-0.example:443"));
  EXPECT_FALSE(valid_host_port("node-0"));
  EXPECT_FALSE(valid_host_port("node-0:0"));
  EXPECT_FALSE(valid_host_port("node-0:70000"));
  EXPECT_FALSE(valid_host_port(":7001"));
  EXPECT_FALSE(valid_host_port("a b:7001"));
}
