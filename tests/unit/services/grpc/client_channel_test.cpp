// A client's token file is read again when it changes (a rotated Secret).
#include "services/grpc/client_channel.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"

using namespace healthtwin;
using namespace std::chrono_literals;

namespace {

void write(const std::filesystem::path& p, const std::string& text, std::filesystem::file_time_type mtime) {
  std::ofstream{p, std::ios::trunc} << text;
  std::filesystem::last_write_time(p, mtime);
}

}  // namespace

TEST(TokenFileHeader, ARotatedTokenIsSentFromTheNextCallOn) {
  healthtwin::testing::temp_dir dir;
  auto file = dir.path() / "service.jwt";
  auto t0 = std::filesystem::file_time_type::clock::now();
  write(file, "first\n", t0);
  services::token_file_header h{file.string(), services::read_token_file(file.string()), 0ms};
  EXPECT_EQ(h.header(), "Bearer first");
  write(file, "  second \n", t0 + 10s);
  EXPECT_EQ(h.header(), "Bearer second");
  EXPECT_EQ(h.header(), "Bearer second");
}

TEST(TokenFileHeader, AnEmptyOrMissingFileKeepsTheLastGoodToken) {
  healthtwin::testing::temp_dir dir;
  auto file = dir.path() / "service.jwt";
  auto t0 = std::filesystem::file_time_type::clock::now();
  write(file, "good", t0);
  services::token_file_header h{file.string(), "good", 0ms};
  write(file, "", t0 + 10s);  // half-written by a rotation
  EXPECT_EQ(h.header(), "Bearer good");
  std::filesystem::remove(file);
  EXPECT_EQ(h.header(), "Bearer good");
  write(file, "newer", t0 + 20s);
  EXPECT_EQ(h.header(), "Bearer newer");
}

TEST(TokenFileHeader, TheFileIsLookedAtAtMostOncePerInterval) {
  healthtwin::testing::temp_dir dir;
  auto file = dir.path() / "service.jwt";
  auto t0 = std::filesystem::file_time_type::clock::now();
  write(file, "first", t0);
  services::token_file_header h{file.string(), "first", std::chrono::hours(1)};
  EXPECT_EQ(h.header(), "Bearer first");  // looked now
  write(file, "second", t0 + 10s);
  EXPECT_EQ(h.header(), "Bearer first");  // not again within the hour
}

TEST(TokenFileHeader, AnEmptyTokenFileIsAnErrorOfTheChannel) {
  healthtwin::testing::temp_dir dir;
  auto file = dir.path() / "service.jwt";
  write(file, " \n", std::filesystem::file_time_type::clock::now());
  services::channel_settings cs;
  cs.target = "127.0.0.1:1";
  cs.plaintext = true;
  cs.token_file = file.string();
  std::string error;
  EXPECT_EQ(services::make_channel(cs, error), nullptr);
  EXPECT_NE(error.find("empty or unreadable"), std::string::npos) << error;
}
