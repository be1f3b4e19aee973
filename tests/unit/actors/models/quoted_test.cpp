#include "actors/models/quoted.hpp"

#include <gtest/gtest.h>

using healthtwin::models::bounded;
using healthtwin::models::quoted_input;

TEST(quoted, short_input_is_quoted_whole) {
  EXPECT_EQ(quoted_input("news2..total"), "'news2..total'");
}

TEST(quoted, long_input_shows_a_bounded_prefix_and_its_length) {
  std::string mb(1 << 20, 'a');
  auto q = quoted_input(mb);
  EXPECT_LT(q.size(), 100u);
  EXPECT_EQ(q, "'" + std::string(64, 'a') + "'... (1048576 bytes)");
}

TEST(quoted, control_characters_are_not_echoed) {
  EXPECT_EQ(quoted_input(std::string{"a\r\nb\x1b", 5}), "'a??b?'");
}

TEST(quoted, a_cut_never_splits_a_utf8_character) {
  std::string s = std::string(63, 'x') + "\xc3\xa9" + "yyy";  // é straddles byte 64
  auto q = quoted_input(s);
  EXPECT_EQ(q, "'" + std::string(63, 'x') + "'... (68 bytes)");
}

TEST(bounded, cuts_long_text_and_marks_the_cut) {
  EXPECT_EQ(bounded("abcdef", 10), "abcdef");
  EXPECT_EQ(bounded("abcdefghijkl", 8), "abcde...");
}
