// Retention in a running node: closed series chunks older than the policy
// disappear from the history; recent data and the open chunk stay.

#include <map>

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

TEST(retention_test, a_node_deletes_readings_past_the_tenant_policy) {
  temp_dir dir;
  auto node = std::make_unique<node_process>(
      dir.path(), std::vector<std::string>{"--retention-raw-days=1", "--retention-tenant=h2=30:2192",
                                           "--retention-interval-ms=300"});
  ASSERT_TRUE(node->wait_ready()) << node->log();
  // One client per tenant: tokens are scoped to one.
  std::map<std::string, std::unique_ptr<api_client>> clients;
  for (auto tenant : {"h1", "h2"})
    clients[tenant] = std::make_unique<api_client>(node->channel(tenant));
  for (auto tenant : {"h1", "h2"}) {
    auto& client = *clients[tenant];
    ASSERT_TRUE(client.create_patient(tenant, "p1", "ICU-1").ok());
    ASSERT_TRUE(client.create_device(tenant, "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR,
                                     std::string{"tenants/"} + tenant + "/patients/p1")
                    .ok());
    // 300 readings at 1 Hz three days ago: one closed chunk of 256, 44 open.
    auto t0 = now_ms() - 3 * 86'400'000LL;
    std::vector<api_client::reading> rs;
    for (uint64_t i = 0; i < 300; ++i)
      rs.push_back({i + 1, t0 + static_cast<int64_t>(i) * 1000, v1::METRIC_HEART_RATE, 70});
    v1::IngestResponse resp;
    ASSERT_TRUE(client.send(api_client::request(std::string{"tenants/"} + tenant + "/devices/mon1", rs), resp).ok());
    ASSERT_EQ(resp.accepted(), 300u);
  }
  auto history = [&](const char* tenant) {
    return clients[tenant]->history(std::string{"tenants/"} + tenant + "/patients/p1", v1::METRIC_HEART_RATE, 0,
                          now_ms());
  };
  size_t h1 = 0;
  for (int i = 0; i < 100 && (h1 = history("h1").size()) != 44; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(h1, 44u);                  // the closed chunk is gone (1 day)
  EXPECT_EQ(history("h2").size(), 300u);  // h2 keeps 30 days
  EXPECT_EQ(node->stop(), 0) << node->log();
}
