#include <gtest/gtest.h>

#include "services/hl7/ack.hpp"
#include "services/hl7/hl7_message.hpp"
#include "services/hl7/pcd01.hpp"

using namespace healthtwin::hl7;

namespace {

std::optional<message> parse_ok(std::string text) {
  error why;
  auto m = message::parse(std::move(text), why);
  EXPECT_TRUE(m) << why.where.to_string() << ": " << why.what;
  return m;
}

std::string parse_error(std::string text) {
  error why;
  auto m = message::parse(std::move(text), why);
  EXPECT_FALSE(m);
  return why.where.to_string() + ": " + why.what;
}

}  // namespace

TEST(hl7_message, reads_fields_components_and_escapes_with_the_declared_delimiters) {
  auto m = parse_ok("MSH|^~\\&|GW^1.2^ISO|WARD||HT|20261206101500+0100||ORU^R01^ORU_R01|MSG-1|P|2.6\r"
                    "OBX|1|ST|X^a\\S\\b^L||one\\F\\two\\T\\three\\E\\\\X41\\||||||F\r");
  ASSERT_TRUE(m);
  auto& msh = m->msh();
  EXPECT_EQ(m->value(msh, 1), "|");
  EXPECT_EQ(m->value(msh, 2), "^~\\&");
  EXPECT_EQ(m->value(msh, 3, 1), "GW");
  EXPECT_EQ(m->value(msh, 9, 2), "R01");
  EXPECT_EQ(m->value(msh, 10), "MSG-1");
  auto& obx = m->segments()[1];
  EXPECT_EQ(m->value(obx, 3, 2), "a^b");
  EXPECT_EQ(m->value(obx, 5), "one|two&three\\A");
  EXPECT_EQ(m->value(obx, 11), "F");
  EXPECT_EQ(m->value(obx, 40), "");  // absent fields are empty
}

TEST(hl7_message, other_delimiters_are_honoured) {
  auto m = parse_ok("MSH#*~\\&#GW##HT##20261206101500##ORU*R01#7#P#2.6\rPID###123*^*^H1\r");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->value(m->msh(), 9, 2), "R01");
  EXPECT_EQ(m->value(m->segments()[1], 3, 1), "123");
}

TEST(hl7_message, tolerates_lf_after_cr_and_numbers_repeated_segments) {
  auto m = parse_ok("MSH|^~\\&|A||B||20261206||ORU^R01|1|P|2.6\r\nOBX|1\r\nOBX|2\n");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->segments().size(), 3u);
  EXPECT_EQ(m->segments()[2].occurrence(), 2);
  EXPECT_EQ(m->segments()[2].at(5).to_string(), "OBX[2]-5");
}

TEST(hl7_message, malformed_input_is_refused_naming_where) {
  EXPECT_EQ(parse_error("PID|1\r"), "MSH: the message must begin with an MSH segment, began 'PID|1?'");
  EXPECT_NE(parse_error("MSH|^^\\&|A\r").find("MSH-2"), std::string::npos);
  EXPECT_NE(parse_error("MSHa^~\\&|A|||||ORU^R01|1\r").find("MSH-2"), std::string::npos);
  EXPECT_NE(parse_error("MSH|^~\\&|A||B||1||ORU^R01|1|P|2.6\robx|1\r").find("segment 2"), std::string::npos);
  EXPECT_NE(parse_error("MSH|^~\\&|A||B||1||ORU^R01|1|P|2.6\rOBX|1|NM|x||\\Q\\\r").find("OBX-5"), std::string::npos);
  EXPECT_NE(parse_error("MSH|^~\\&|A||B||1||ORU^R01|1|P|2.6\rMSH|^~\\&|A\r").find("second MSH"), std::string::npos);
  std::string many = "MSH|^~\\&|A||B||1||ORU^R01|1|P|2.6\r";
  for (int i = 0; i < 2100; ++i)
    many += "NTE|1\r";
  EXPECT_NE(parse_error(many).find("more than 2000 segments"), std::string::npos);
}

TEST(hl7_message, escape_round_trips_the_delimiters) {
  delimiters d;
  std::string text = "a|b^c&d~e\\f";
  auto escaped = escape(text, d);
  EXPECT_EQ(escaped.find('|'), std::string::npos);
  EXPECT_EQ(unescape(escaped, d), text);
  EXPECT_FALSE(unescape("\\X4\\", d));
  EXPECT_FALSE(unescape("\\Z\\", d));
  EXPECT_FALSE(unescape("open\\F", d));
}

TEST(hl7_time, parses_precision_fractions_and_offsets) {
  // 2026-12-06 10:15:00 UTC = 1796552100000 ms.
  EXPECT_EQ(parse_hl7_time("20261206101500"), 1796552100000);
  EXPECT_EQ(parse_hl7_time("202612061015"), 1796552100000);
  EXPECT_EQ(parse_hl7_time("20261206111500+0100"), 1796552100000);
  EXPECT_EQ(parse_hl7_time("20261206051500-0500"), 1796552100000);
  EXPECT_EQ(parse_hl7_time("20261206101500.25"), 1796552100250);
  EXPECT_EQ(parse_hl7_time("20261206101500.1234"), 1796552100123);
  EXPECT_FALSE(parse_hl7_time("20261306101500"));
  EXPECT_FALSE(parse_hl7_time("20260230101500"));
  EXPECT_FALSE(parse_hl7_time("2026120610"));
  EXPECT_FALSE(parse_hl7_time("20261206101500+01"));
  EXPECT_FALSE(parse_hl7_time("2026120610150x"));
  EXPECT_EQ(format_hl7_time(1796552100000), "20261206101500+0000");
}

TEST(hl7_ack, answers_the_message_it_belongs_to_and_names_the_error) {
  header h;
  h.sending_application = "GW";
  h.sending_facility = "ICU";
  h.trigger_event = "R01";
  h.control_id = "MSG|7";
  h.version = "2.6";
  auto ack = make_ack(&h, responder{"HEALTHTWIN", "HOSP"}, ack_code::error,
                      {{location{"OBX", 3, 5, 0}, err_code::data_type, "OBX-5: must be a number, was \"x|y\""}},
                      "A1", 1796552100000);
  error why;
  auto m = message::parse(ack, why);
  ASSERT_TRUE(m) << why.what;
  EXPECT_EQ(m->value(m->msh(), 9), "ACK^R01^ACK");
  EXPECT_EQ(m->value(m->msh(), 5), "GW");
  EXPECT_EQ(m->value(m->msh(), 10), "A1");
  auto& msa = m->segments()[1];
  EXPECT_EQ(msa.id(), "MSA");
  EXPECT_EQ(m->value(msa, 1), "AE");
  EXPECT_EQ(m->value(msa, 2), "MSG|7");  // escaped on the wire, the same id read back
  auto& err = m->segments()[2];
  EXPECT_EQ(m->value(err, 2, 1), "OBX");
  EXPECT_EQ(m->value(err, 2, 2), "3");
  EXPECT_EQ(m->value(err, 2, 3), "5");
  EXPECT_EQ(m->value(err, 3, 1), "102");
  EXPECT_EQ(m->value(err, 4), "E");
  EXPECT_EQ(m->value(err, 8), "OBX-5: must be a number, was \"x|y\"");
}
