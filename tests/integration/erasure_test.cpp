// Erasure of a patient in a running, encrypted node: after ErasePatient
// and the purge that follows it, no file under the data directory holds
// the patient's identifiers or values — read as stored or decrypted with
// the node key — while another patient's data is intact. The erasure is
// audited (by pseudonym) and the id cannot be registered again.

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstring>
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

std::vector<v1::Alert> alerts_of(api_client& c, const std::string& patient, bool resolved = false) {
  std::vector<v1::Alert> out;
  for (auto& a : c.list_alerts("tenants/h1", resolved))
    if (a.patient() == patient)
      out.push_back(a);
  return out;
}

constexpr const char* erased_id = "pt-erase-me-4242";
constexpr const char* kept_id = "pt-keep-1717";
const std::string erased = std::string{"tenants/h1/patients/"} + erased_id;
const std::string kept = std::string{"tenants/h1/patients/"} + kept_id;
constexpr double erased_temperature = 38.71;  // values only these patients have
constexpr double kept_temperature = 37.13;

std::string bytes_of(double v) {
  std::string s(sizeof v, '\0');
  std::memcpy(s.data(), &v, sizeof v);
  return s;
}

// 400 s of 1 Hz heart rate (a closed series chunk) and one temperature.
void feed(api_client& c, const std::string& device, double hr, double temperature) {
  auto t0 = now_ms() - 500'000;
  std::vector<api_client::reading> rs;
  for (uint64_t i = 0; i < 400; ++i)
    rs.push_back({i + 1, t0 + static_cast<int64_t>(i) * 1000, v1::METRIC_HEART_RATE, hr});
  rs.push_back({401, t0 + 400'000, v1::METRIC_TEMPERATURE, temperature});
  v1::IngestResponse resp;
  ASSERT_TRUE(c.send(api_client::request(device, rs), resp).ok());
  ASSERT_EQ(resp.accepted(), 401u);
}

// Both patients with a monitor each; the one to erase is tachycardic, so it
// has alerts too.
void populate(api_client& c) {
  ASSERT_TRUE(c.create_patient("h1", erased_id, "ICU-2").ok());
  ASSERT_TRUE(c.create_patient("h1", kept_id, "ICU-2").ok());
  ASSERT_TRUE(c.create_device("h1", "mon-a", v1::DEVICE_TYPE_BEDSIDE_MONITOR, erased).ok());
  ASSERT_TRUE(c.create_device("h1", "mon-b", v1::DEVICE_TYPE_BEDSIDE_MONITOR, kept).ok());
  feed(c, "tenants/h1/devices/mon-a", 150, erased_temperature);
  feed(c, "tenants/h1/devices/mon-b", 70, kept_temperature);
  for (int i = 0; i < 100 && alerts_of(c, erased).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_FALSE(alerts_of(c, erased).empty()) << "the erased patient should have had alerts";
}

// The node's data directory, to scan as stored and decrypted.
healthtwin::storage::store_settings data_files(const temp_dir& dir, const std::string& key) {
  healthtwin::storage::store_settings files;
  files.data_dir = (dir.path() / "db").string();
  files.encryption_key_file = key;
  return files;
}

std::vector<std::string> files_with(const healthtwin::storage::store_settings& files,
                                    const std::string& needle) {
  auto hits = healthtwin::storage::files_containing(files, needle);
  EXPECT_TRUE(hits) << healthtwin::storage::describe(hits.error());
  return hits ? *hits : std::vector<std::string>{"<scan failed>"};
}

int run_twinctl(const std::vector<std::string>& args) {
  std::string cmd = HEALTHTWIN_TWINCTL_BINARY;
  for (auto& a : args)
    cmd += " '" + a + "'";
  cmd += " >/dev/null 2>&1";
  auto status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(erasure_test, nothing_of_an_erased_patient_is_left_in_any_file) {
  temp_dir dir;
  auto key = write_key_file(dir.path() / "node.key",
                            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  std::vector<std::string> args{"--encryption-key-file=" + key, "--checkpoint-interval-ms=300"};
  auto files = data_files(dir, key);
  auto found = [&](const std::string& needle) { return files_with(files, needle); };

  auto node = std::make_unique<node_process>(dir.path(), args);
  ASSERT_TRUE(node->wait_ready()) << node->log();
  {
    api_client c{node->channel()};
    ASSERT_NO_FATAL_FAILURE(populate(c));
    // Control: the decrypting scan sees the patient's identifier and values.
    EXPECT_FALSE(found(erased_id).empty());
    EXPECT_FALSE(found(bytes_of(erased_temperature)).empty());

    grpc::ClientContext ctx;
    api_client::deadline(ctx, 30);
    v1::ErasePatientRequest req;
    req.set_name(erased);
    v1::ErasePatientResponse resp;
    auto st = c.registry->ErasePatient(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.pseudonym().size(), 16u);
    ASSERT_EQ(resp.detached_devices_size(), 1);
    EXPECT_EQ(resp.detached_devices(0), "tenants/h1/devices/mon-a");

    // Gone from the API at once; the id cannot come back; the other stays.
    grpc::ClientContext gctx;
    api_client::deadline(gctx);
    v1::GetPatientRequest greq;
    greq.set_name(erased);
    v1::Patient gone;
    EXPECT_EQ(c.registry->GetPatient(&gctx, greq, &gone).error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_TRUE(alerts_of(c, erased, true).empty());
    EXPECT_EQ(c.create_patient("h1", erased_id, "ICU-2").error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
    grpc::ClientContext again_ctx;
    api_client::deadline(again_ctx);
    EXPECT_EQ(c.registry->ErasePatient(&again_ctx, req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(c.history(kept, v1::METRIC_HEART_RATE, 0, now_ms()).size(), 400u);
    // The detached device still reports, for nobody.
    v1::IngestResponse late;
    ASSERT_TRUE(c.send(api_client::request("tenants/h1/devices/mon-a",
                                           {{500, now_ms(), v1::METRIC_HEART_RATE, 151}}),
                       late)
                    .ok());
    EXPECT_EQ(late.accepted(), 1u);
  }
  // The purge runs after the next checkpoint.
  for (int i = 0; i < 300 && node->metric("healthtwin_erasure_purges_total") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GE(node->metric("healthtwin_erasure_purges_total"), 1) << node->log();
  ASSERT_EQ(node->stop(), 0) << node->log();
  // The purge left none of the patient's values in any file (WAL included).
  EXPECT_EQ(found(bytes_of(erased_temperature)), std::vector<std::string>{});
  // RocksDB rewrites its MANIFEST (which remembers the key range of every
  // file it ever had) at each start: one restart, as after any deployment.
  node = std::make_unique<node_process>(dir.path(), args);
  ASSERT_TRUE(node->wait_ready()) << node->log();
  {
    api_client c{node->channel()};
    EXPECT_EQ(c.history(kept, v1::METRIC_HEART_RATE, 0, now_ms()).size(), 400u);
    auto twin = c.patient_twin(kept);
    ASSERT_NE(find_vital(twin, v1::METRIC_TEMPERATURE), nullptr);
  }
  ASSERT_EQ(node->stop(), 0) << node->log();

  EXPECT_EQ(found(erased_id), std::vector<std::string>{});
  EXPECT_EQ(found(bytes_of(erased_temperature)), std::vector<std::string>{});
  EXPECT_FALSE(found(kept_id).empty());  // the scan still sees what is there
  // The ops tool agrees, and the audit chain holds the erasure.
  EXPECT_EQ(run_twinctl({"scan", "--data-dir", files.data_dir, "--encryption-key-file", key,
                         "--text", erased_id}),
            0);
  EXPECT_EQ(run_twinctl({"scan", "--data-dir", files.data_dir, "--encryption-key-file", key,
                         "--text", kept_id}),
            1);
  EXPECT_EQ(run_twinctl({"audit", "verify", "--data-dir", files.data_dir,
                         "--encryption-key-file", key}),
            0);
}

// The node is killed right after an erasure, before its purge ran (a
// checkpoint, spread over 2 s, comes first). The purge is owed by
// pseudonym only, so the next start purges everything erased: afterwards no
// file holds the patient's identifier or values.
TEST(erasure_test, a_purge_cut_short_by_a_crash_runs_after_the_restart) {
  temp_dir dir;
  auto key = write_key_file(dir.path() / "node.key",
                            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  std::vector<std::string> args{"--encryption-key-file=" + key};
  auto files = data_files(dir, key);
  auto found = [&](const std::string& needle) { return files_with(files, needle); };

  auto node = std::make_unique<node_process>(dir.path(), args);
  ASSERT_TRUE(node->wait_ready()) << node->log();
  {
    api_client c{node->channel()};
    ASSERT_NO_FATAL_FAILURE(populate(c));
    grpc::ClientContext ctx;
    api_client::deadline(ctx, 30);
    v1::ErasePatientRequest req;
    req.set_name(erased);
    v1::ErasePatientResponse resp;
    ASSERT_TRUE(c.registry->ErasePatient(&ctx, req, &resp).ok());
  }
  EXPECT_LT(node->metric("healthtwin_erasure_purges_total"), 1);  // not yet
  node->crash();
  EXPECT_FALSE(found(bytes_of(erased_temperature)).empty());  // still on disk (WAL, SST)

  node = std::make_unique<node_process>(dir.path(), args);
  ASSERT_TRUE(node->wait_ready()) << node->log();
  for (int i = 0; i < 300 && node->metric("healthtwin_erasure_purges_total") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GE(node->metric("healthtwin_erasure_purges_total"), 1) << node->log();
  EXPECT_NE(node->log().find("erasure purge(s) owed"), std::string::npos) << node->log();
  ASSERT_EQ(node->stop(), 0) << node->log();
  auto log_before = node->log().size();  // the log file is appended to
  node = std::make_unique<node_process>(dir.path(), args);  // MANIFEST rewritten
  ASSERT_TRUE(node->wait_ready()) << node->log();
  {
    api_client c{node->channel()};
    EXPECT_EQ(c.history(kept, v1::METRIC_HEART_RATE, 0, now_ms()).size(), 400u);
  }
  ASSERT_EQ(node->stop(), 0) << node->log();
  EXPECT_EQ(node->log().find("erasure purge(s) owed", log_before), std::string::npos);  // paid once
  EXPECT_EQ(found(erased_id), std::vector<std::string>{});
  EXPECT_EQ(found(bytes_of(erased_temperature)), std::vector<std::string>{});
  EXPECT_FALSE(found(kept_id).empty());  // the scan still sees what is there
}
