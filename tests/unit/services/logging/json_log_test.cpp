// JSON log lines and request ids, through a real spdlog logger.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "services/logging/json_log.hpp"

using namespace healthtwin::services;

namespace {

// Each line `log` writes through a JSON-formatted logger, parsed.
std::vector<nlohmann::json> lines(const std::function<void(spdlog::logger&)>& log) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger{"test", sink};
  logger.set_formatter(std::make_unique<json_log_formatter>());
  log(logger);
  logger.flush();
  std::vector<nlohmann::json> parsed;
  std::istringstream in{out.str()};
  for (std::string line; std::getline(in, line);)
    parsed.push_back(nlohmann::json::parse(line));  // throws: not one JSON object per line
  return parsed;
}

}  // namespace

TEST(json_log, each_line_is_one_json_object_with_time_level_and_the_message_escaped) {
  auto got = lines([](spdlog::logger& l) {
    l.warn("a \"quoted\" word,\na second line and a tab\t");
    l.error("bytes that are not UTF-8: {}", std::string{"\xff\xfe"});
  });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["level"], "warning");
  EXPECT_EQ(got[0]["message"], "a \"quoted\" word,\na second line and a tab\t");
  EXPECT_EQ(got[0]["time"].get<std::string>().size(), 24u);  // 2026-12-06T14:32:46.857Z
  EXPECT_EQ(got[0]["time"].get<std::string>().back(), 'Z');
  EXPECT_TRUE(got[0]["thread"].is_number());
  EXPECT_FALSE(got[0].contains("request_id"));
  EXPECT_EQ(got[1]["level"], "error");
}

TEST(json_log, lines_logged_while_serving_a_call_carry_its_request_id) {
  auto got = lines([](spdlog::logger& l) {
    {
      request_scope outer{"req-1"};
      l.info("in the call");
      {
        request_scope inner{"req-2"};
        l.info("a nested scope");
      }
      l.info("back in the call");
    }
    l.info("after it");
  });
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0]["request_id"], "req-1");
  EXPECT_EQ(got[1]["request_id"], "req-2");
  EXPECT_EQ(got[2]["request_id"], "req-1");
  EXPECT_FALSE(got[3].contains("request_id"));
  EXPECT_TRUE(current_request_id().empty());
}

TEST(json_log, a_callers_request_id_is_taken_only_when_it_is_sane) {
  EXPECT_EQ(request_id_or_new("3f2a-9c.x_1:z"), "3f2a-9c.x_1:z");
  for (std::string bad : {std::string{}, std::string(65, 'a'), std::string{"a b"}, std::string{"a\nb"},
                          std::string{"x\"}"}, std::string{"\xc3\xa9"}}) {
    auto id = request_id_or_new(bad);
    EXPECT_NE(id, bad);
    EXPECT_EQ(id.size(), 16u) << "a new id replaces " << bad;
  }
  EXPECT_NE(request_id_or_new(""), request_id_or_new(""));
}

TEST(json_log, only_text_and_json_are_formats) {
  EXPECT_TRUE(use_log_format("text"));
  EXPECT_FALSE(use_log_format("xml"));
}
