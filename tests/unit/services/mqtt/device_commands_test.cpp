// Desired configurations onto devices' commands topics: published when the
// node has a newer version, once per version, for devices seen lately
// (an injected clock; no sleeping).
#include "services/mqtt/device_commands.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace healthtwin;
using namespace healthtwin::mqtt;

namespace {

constexpr const char* device = "tenants/st-mary/devices/wear-001";

v1::Device with_desired(uint64_t version, std::string firmware) {
  v1::Device d;
  d.set_name(device);
  d.mutable_desired()->set_version(version);
  d.mutable_desired()->set_firmware(std::move(firmware));
  (*d.mutable_desired()->mutable_settings())["sample_rate_hz"] = "1";
  return d;
}

struct fixture {
  std::vector<std::pair<std::string, nlohmann::json>> published;
  bool broker_up = true;
  std::map<std::string, v1::Device> node;
  std::vector<std::string> asked;
  int64_t now = 1'000'000;

  device_commands make() {
    return device_commands{{std::chrono::minutes(10)},
                           [this](const std::string& topic, const std::string& body) {
                             if (!broker_up)
                               return false;
                             published.emplace_back(topic, nlohmann::json::parse(body));
                             return true;
                           },
                           [this](const std::string& name, v1::Device& out) {
                             asked.push_back(name);
                             auto it = node.find(name);
                             if (it == node.end())
                               return grpc::Status{grpc::StatusCode::NOT_FOUND, "no such device"};
                             out = it->second;
                             return grpc::Status::OK;
                           },
                           [this] { return now; }};
  }
};

}  // namespace

TEST(DeviceCommands, PublishesEachNewerDesiredVersionOnceToTheDevicesCommandsTopic) {
  fixture f;
  auto c = f.make();
  EXPECT_TRUE(c.offer(with_desired(3, "2.1.0")));
  ASSERT_EQ(f.published.size(), 1u);
  EXPECT_EQ(f.published[0].first, "healthtwin/st-mary/devices/wear-001/commands");
  EXPECT_EQ(f.published[0].second["firmware"], "2.1.0");
  EXPECT_EQ(f.published[0].second["version"], "3");
  EXPECT_EQ(f.published[0].second["settings"]["sample_rate_hz"], "1");
  EXPECT_TRUE(c.offer(with_desired(3, "2.1.0")));
  EXPECT_TRUE(c.offer(with_desired(2, "2.0.0")));  // an older view: nothing
  EXPECT_EQ(f.published.size(), 1u);
  EXPECT_TRUE(c.offer(with_desired(4, "2.2.0")));
  EXPECT_EQ(f.published.size(), 2u);
}

TEST(DeviceCommands, NothingDesiredIsNothingPublished) {
  fixture f;
  auto c = f.make();
  v1::Device d;
  d.set_name(device);
  EXPECT_TRUE(c.offer(d));
  EXPECT_TRUE(f.published.empty());
}

TEST(DeviceCommands, APublicationTheBrokerDidNotConfirmIsRetriedByThePoll) {
  fixture f;
  auto c = f.make();
  f.broker_up = false;
  c.seen(device);
  EXPECT_FALSE(c.offer(with_desired(5, "3.0.0")));
  f.node[device] = with_desired(5, "3.0.0");
  f.broker_up = true;
  EXPECT_EQ(c.poll(), 1u);
  ASSERT_EQ(f.published.size(), 1u);
  EXPECT_EQ(c.poll(), 0u);  // published already
  EXPECT_EQ(f.published.size(), 1u);
}

TEST(DeviceCommands, ThePollReadsDevicesSeenLatelyAndForgetsQuietOnes) {
  fixture f;
  auto c = f.make();
  c.seen(device);
  c.seen("tenants/st-mary/devices/wear-002");
  f.node[device] = with_desired(1, "1.0.0");  // wear-002 has nothing desired; wear-003 is unknown
  c.seen("tenants/st-mary/devices/wear-003");
  EXPECT_EQ(c.poll(), 1u);
  EXPECT_EQ(f.asked.size(), 3u);
  f.node[device] = with_desired(2, "1.1.0");  // an operator's change
  f.now += 5 * 60'000;
  EXPECT_EQ(c.poll(), 1u);
  EXPECT_EQ(f.published.back().second["firmware"], "1.1.0");
  f.now += 6 * 60'000;  // 11 min since last seen
  f.asked.clear();
  EXPECT_EQ(c.poll(), 0u);
  EXPECT_TRUE(f.asked.empty());
}
