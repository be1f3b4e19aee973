#include "actors/models/sequence_window.hpp"

#include <gtest/gtest.h>

using healthtwin::models::sequence_window;
using verdict = sequence_window::verdict;

TEST(sequence_window, accepts_each_number_once) {
  sequence_window w;
  EXPECT_EQ(w.admit(1), verdict::accept);
  EXPECT_EQ(w.admit(2), verdict::accept);
  EXPECT_EQ(w.admit(1), verdict::duplicate);
  EXPECT_EQ(w.admit(2), verdict::duplicate);
  EXPECT_EQ(w.highest(), 2u);
}

TEST(sequence_window, sequence_zero_is_invalid) {
  sequence_window w;
  EXPECT_EQ(w.admit(0), verdict::invalid);
}

TEST(sequence_window, tolerates_reordering_within_the_window) {
  sequence_window w;
  EXPECT_EQ(w.admit(300), verdict::accept);
  EXPECT_EQ(w.admit(299), verdict::accept);
  EXPECT_EQ(w.admit(45), verdict::accept);  // 300 - 255
  EXPECT_EQ(w.admit(45), verdict::duplicate);
  EXPECT_EQ(w.admit(44), verdict::too_old);  // 300 - 256
}

TEST(sequence_window, remembers_gaps_across_word_boundaries) {
  sequence_window w;
  for (uint64_t s = 1; s <= 200; s += 2)
    ASSERT_EQ(w.admit(s), verdict::accept);
  for (uint64_t s = 1; s <= 199; s += 2)
    EXPECT_EQ(w.check(s), verdict::duplicate) << s;
  for (uint64_t s = 2; s <= 198; s += 2)
    EXPECT_EQ(w.check(s), verdict::accept) << s;
  // A jump of 70 moves the bits across a 64-bit word boundary.
  ASSERT_EQ(w.admit(269), verdict::accept);
  EXPECT_EQ(w.check(199), verdict::duplicate);
  EXPECT_EQ(w.check(198), verdict::accept);
  EXPECT_EQ(w.check(13), verdict::too_old);
  EXPECT_EQ(w.check(15), verdict::duplicate);  // 269 - 254
}

TEST(sequence_window, big_jump_clears_the_window) {
  sequence_window w;
  w.admit(5);
  EXPECT_EQ(w.admit(10'000), verdict::accept);
  EXPECT_EQ(w.check(5), verdict::too_old);
  EXPECT_EQ(w.check(9'999), verdict::accept);
}

TEST(sequence_window, merge_is_the_union_and_idempotent) {
  sequence_window a, b;
  for (uint64_t s : {1, 2, 5, 9})
    a.admit(s);
  for (uint64_t s : {3, 5, 12})
    b.admit(s);
  auto u = a;
  u.merge(b);
  for (uint64_t s : {1, 2, 3, 5, 9, 12})
    EXPECT_EQ(u.check(s), verdict::duplicate) << s;
  for (uint64_t s : {4, 6, 7, 8, 10, 11})
    EXPECT_EQ(u.check(s), verdict::accept) << s;
  auto twice = u;
  twice.merge(b);
  twice.merge(a);
  EXPECT_EQ(twice, u);
}

TEST(sequence_window, restores_from_raw_state) {
  sequence_window w;
  for (uint64_t s : {7, 3, 100, 64})
    w.admit(s);
  auto r = sequence_window::restore(w.highest(), w.seen_bits());
  EXPECT_EQ(r, w);
  EXPECT_EQ(r.check(64), verdict::duplicate);
  EXPECT_EQ(r.check(65), verdict::accept);
}
