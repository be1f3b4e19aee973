#include <gtest/gtest.h>

#include "services/hl7/adt.hpp"

using namespace healthtwin::hl7;

namespace {

std::optional<adt_event> read(const std::string& trigger, const std::string& pid, const std::string& pv1,
                              std::string* why_text = nullptr) {
  error why;
  auto m = message::parse("MSH|^~\\&|EPIC|H|HT|H|20261206101500||ADT^" + trigger + "|1|P|2.5\r" + pid + "\r" + pv1 + "\r",
                          why);
  EXPECT_TRUE(m) << why.what;
  auto e = read_adt(*m, trigger, why);
  if (why_text)
    *why_text = why.where.to_string() + ": " + why.what;
  return e;
}

}  // namespace

TEST(adt, reads_the_patient_and_the_new_and_prior_beds) {
  auto e = read("A02", "PID|||MRN1001^^^HOSP^MR~X9^^^OTHER||Doe^Jane", "PV1||I|ICU^1^2|||ICU^1^1");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->patient_id, "mrn1001");  // the first identifier, lower-cased
  EXPECT_EQ(e->location.key(), "ICU^1^2");
  EXPECT_EQ(e->prior.key(), "ICU^1^1");
}

TEST(adt, refuses_what_it_cannot_act_on_naming_the_field) {
  std::string why;
  EXPECT_FALSE(read("A01", "PID|||MRN 1001!", "PV1||I|ICU^1^2", &why));
  EXPECT_NE(why.find("PID-3"), std::string::npos) << why;
  EXPECT_FALSE(read("A01", "PID|||MRN1001", "PV1||I", &why));  // an admit without a bed
  EXPECT_NE(why.find("PV1-3"), std::string::npos) << why;
  EXPECT_TRUE(read("A03", "PID|||MRN1001", "PV1||I"));  // a discharge needs none
  EXPECT_FALSE(read("A08", "NTE|1", "PV1||I", &why));
  EXPECT_NE(why.find("PID"), std::string::npos) << why;
}

TEST(bed_map, maps_beds_to_device_ids_and_refuses_bad_files_naming_the_entry) {
  std::string why;
  auto beds = bed_map::parse(R"({"ICU^1^1": ["mon-1", "pump-1"], "ICU^1^2": []})", why);
  ASSERT_TRUE(beds) << why;
  EXPECT_EQ(beds->devices({"ICU", "1", "1"}), (std::vector<std::string>{"mon-1", "pump-1"}));
  EXPECT_TRUE(beds->devices({"ICU", "9", "9"}).empty());
  EXPECT_FALSE(bed_map::parse("[1, 2]", why));
  EXPECT_FALSE(bed_map::parse(R"({"ICU^1^1": "mon-1"})", why));
  EXPECT_NE(why.find("ICU^1^1"), std::string::npos) << why;
  EXPECT_FALSE(bed_map::parse(R"({"ICU^1^1": ["Mon 1"]})", why));
  EXPECT_NE(why.find("not a device id"), std::string::npos) << why;
  EXPECT_FALSE(bed_map::parse("{not json", why));
}
