// What a running node leaves on disk: with --encryption-key-file no
// patient or device identifier is found in any file of the data directory
// (the same run without a key finds them, so the scan is real), the data
// reads back after a restart, and the node refuses to start without its key.

#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "storage/file_scan.hpp"
#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/key_file.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

constexpr const char* patient_id = "pt-at-rest-probe-5309";
constexpr const char* device_id = "mon-at-rest-probe-8812";
const std::string patient = std::string{"tenants/h1/patients/"} + patient_id;
const std::string device = std::string{"tenants/h1/devices/"} + device_id;

// Files under `dir` whose bytes, as stored, contain `needle`.
std::vector<std::string> files_containing(const std::filesystem::path& dir,
                                          const std::string& needle) {
  healthtwin::storage::store_settings as_stored;  // no key: the raw bytes only
  as_stored.data_dir = dir.string();
  auto hits = healthtwin::storage::files_containing(as_stored, needle);
  EXPECT_TRUE(hits);
  return hits ? *hits : std::vector<std::string>{"<scan failed>"};
}

// Registers the probe patient and device and ingests 400 heart rates (one
// closed series chunk, an open one in the snapshot), then stops the node
// (it snapshots and checkpoints on the way out).
void run_node_with_probe(const temp_dir& dir, const std::vector<std::string>& extra) {
  node_process node{dir.path(), extra};
  ASSERT_TRUE(node.wait_ready()) << node.log();
  api_client client{node.channel()};
  ASSERT_TRUE(client.create_patient("h1", patient_id, "ICU-9").ok());
  ASSERT_TRUE(client.create_device("h1", device_id, v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
  auto t0 = now_ms() - 400'000;
  std::vector<api_client::reading> rs;
  for (uint64_t i = 0; i < 400; ++i)
    rs.push_back({i + 1, t0 + static_cast<int64_t>(i) * 1000, v1::METRIC_HEART_RATE, 71});
  v1::IngestResponse resp;
  ASSERT_TRUE(client.send(api_client::request(device, rs), resp).ok());
  ASSERT_EQ(resp.accepted(), 400u);
  ASSERT_EQ(node.stop(), 0) << node.log();
}

}  // namespace

TEST(storage_at_rest_test, an_encrypted_node_leaves_no_identifier_in_plaintext) {
  temp_dir plain;
  run_node_with_probe(plain, {});
  // Control: a plaintext directory does hold the identifiers.
  EXPECT_FALSE(files_containing(plain.path() / "db", patient_id).empty());
  EXPECT_FALSE(files_containing(plain.path() / "db", device_id).empty());

  temp_dir secret;
  auto key = write_key_file(secret.path() / "node.key",
                            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  run_node_with_probe(secret, {"--encryption-key-file=" + key});
  EXPECT_EQ(files_containing(secret.path() / "db", patient_id), std::vector<std::string>{});
  EXPECT_EQ(files_containing(secret.path() / "db", device_id), std::vector<std::string>{});

  {  // Without its key the node refuses to start, and says why.
    node_process keyless{secret.path()};
    EXPECT_FALSE(keyless.wait_ready(std::chrono::seconds(20)));
    EXPECT_NE(keyless.process().wait(std::chrono::seconds(20)), 0);
    EXPECT_NE(keyless.log().find("is encrypted"), std::string::npos) << keyless.log();
  }

  node_process node{secret.path(), {"--encryption-key-file=" + key}};
  ASSERT_TRUE(node.wait_ready()) << node.log();
  api_client client{node.channel()};
  EXPECT_EQ(client.history(patient, v1::METRIC_HEART_RATE, 0, now_ms()).size(), 400u);
  auto twin = client.patient_twin(patient);
  auto* hr = find_vital(twin, v1::METRIC_HEART_RATE);
  ASSERT_NE(hr, nullptr);
  EXPECT_EQ(hr->value(), 71);
  EXPECT_EQ(node.stop(), 0) << node.log();
}
