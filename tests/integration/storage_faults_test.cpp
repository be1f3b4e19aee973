// Storage faults in a running node: a full disk refuses ingest with
// RESOURCE_EXHAUSTED and never acknowledges what it did not persist; the
// node recovers by itself when space returns; a damaged file stops the
// next start with a message naming it; a disk whose writes fail (EIO)
// refuses with UNAVAILABLE, again acknowledging nothing it did not persist.
//
// The full disk is a small tmpfs the test mounts itself (root only); the
// failing disk is faulty_fs, a pass-through FUSE file system whose writes
// fail on a signal (the kernel here has no device-mapper error target).
// Where mounting is not allowed the tests are skipped and say why.

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "storage/errc.hpp"
#include "storage/store.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted at the end.
class small_filesystem {
public:
  explicit small_filesystem(int mib) {
    auto opts = "size=" + std::to_string(mib) + "m,mode=0700";
    if (::mount("tmpfs", dir_.str().c_str(), "tmpfs", 0, opts.c_str()) == 0)
      mounted_ = true;
    else
      why_ = std::string{"cannot mount a tmpfs here ("} + std::strerror(errno) + ")";
  }
  ~small_filesystem() {
    if (mounted_)
      ::umount2(dir_.str().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& why_not() const { return why_; }
  const temp_dir& dir() const { return dir_; }

  uint64_t free_bytes() const {
    struct statvfs s {};
    ::statvfs(dir_.str().c_str(), &s);
    return uint64_t{s.f_bavail} * s.f_frsize;
  }

  // Fills the file system with a ballast file, leaving about `leave` bytes.
  void fill_leaving(uint64_t leave) {
    auto size = free_bytes() > leave ? free_bytes() - leave : 0;
    std::ofstream out{ballast(), std::ios::binary};
    std::string mib(1 << 20, 'x');
    for (uint64_t n = 0; n < size; n += mib.size())
      out.write(mib.data(), static_cast<std::streamsize>(std::min<uint64_t>(mib.size(), size - n)));
  }
  void free_ballast() { std::filesystem::remove(ballast()); }

private:
  std::string ballast() const { return dir_.str() + "/ballast"; }
  temp_dir dir_;
  bool mounted_ = false;
  std::string why_;
};

// faulty_fs over a backing directory, mounted on a fresh directory; its
// writes fail from fail() until heal(). Unmounted (SIGTERM, by PID) at the end.
class failing_filesystem {
public:
  failing_filesystem() {
    if (!std::filesystem::exists("/dev/fuse")) {
      why_ = "no /dev/fuse on this machine";
      return;
    }
    proc_ = std::make_unique<child_process>(
        std::vector<std::string>{HEALTHTWIN_FAULTY_FS_BINARY, backing_.str(), mount_.str()},
        log_.str() + "/faulty_fs.log");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline && proc_->running() && !mounted())
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!mounted())
      why_ = "cannot mount a FUSE file system here: " + read_file(log_.path() / "faulty_fs.log");
  }
  ~failing_filesystem() {
    if (proc_)
      proc_->kill(SIGTERM, std::chrono::seconds(10));
    if (mounted())
      ::umount2(mount_.str().c_str(), MNT_DETACH);
  }
  bool mounted() const {
    struct stat a {}, b {};
    return ::stat(mount_.str().c_str(), &a) == 0 && ::stat(backing_.str().c_str(), &b) == 0 &&
           a.st_dev != b.st_dev;
  }
  const std::string& why_not() const { return why_; }
  std::filesystem::path path() const { return mount_.path(); }
  // The helper takes the signal in its own time: each waits until a probe
  // file shows the change (else a write racing the signal could still pass).
  void fail() {
    ::kill(proc_->pid(), SIGUSR1);
    wait_until_writes(false);
  }
  void heal() {
    ::kill(proc_->pid(), SIGUSR2);
    wait_until_writes(true);
  }

private:
  void wait_until_writes(bool succeed) {
    auto probe = (mount_.path() / ".probe").string();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int fd = ::open(probe.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
      bool wrote = fd >= 0 && ::write(fd, "x", 1) == 1 && ::fsync(fd) == 0;
      if (fd >= 0)
        ::close(fd);
      if (wrote == succeed) {
        if (succeed)
          ::unlink(probe.c_str());
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << "the failing file system did not " << (succeed ? "heal" : "fail") << " within 10 s";
  }

  temp_dir backing_, mount_, log_;
  std::unique_ptr<child_process> proc_;
  std::string why_;
};

const std::string patient = "tenants/h1/patients/p1";
const std::string device = "tenants/h1/devices/mon1";

grpc::Status read_patient_twin(api_client& client) {
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::GetPatientTwinRequest req;
  req.set_name(patient);
  v1::PatientTwin twin;
  return client.twins->GetPatientTwin(&ctx, req, &twin);
}

std::vector<api_client::reading> batch_of(uint64_t first_seq, size_t n, int64_t t0) {
  std::vector<api_client::reading> rs;
  for (uint64_t i = 0; i < n; ++i)
    rs.push_back({first_seq + i, t0 + static_cast<int64_t>(first_seq + i) * 1000,
                  v1::METRIC_HEART_RATE, 60 + static_cast<double>((first_seq + i) % 40)});
  return rs;
}

}  // namespace

TEST(storage_faults_test, a_full_disk_refuses_without_acking_and_the_node_recovers) {
  small_filesystem fs{96};
  if (!fs.mounted())
    GTEST_SKIP() << fs.why_not();
  // The data directory is on the small file system; the node's log is not.
  std::filesystem::create_directories(fs.dir().path() / "node");
  auto node = std::make_unique<node_process>(fs.dir().path() / "node");
  ASSERT_TRUE(node->wait_ready()) << node->log();
  api_client client{node->channel()};
  ASSERT_TRUE(client.create_patient("h1", "p1", "ICU-1").ok());
  ASSERT_TRUE(client.create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());

  // Restart on an almost full file system: the new WAL cannot reserve its
  // usual preallocation, so ingest soon meets the end of the disk.
  ASSERT_EQ(node->stop(), 0) << node->log();
  fs.fill_leaving(3 << 20);
  node = std::make_unique<node_process>(fs.dir().path() / "node");
  ASSERT_TRUE(node->wait_ready()) << node->log();
  client = api_client{node->channel()};
  auto t0 = now_ms() - 25 * 86'400'000LL;  // room for 2,000 batches of 1,000 s
  uint64_t acked = 0;  // readings 1..acked are acknowledged
  grpc::Status refused;
  for (int i = 0; i < 2000 && refused.ok(); ++i) {
    v1::IngestResponse resp;
    auto st = client.send(api_client::request(device, batch_of(acked + 1, 1000, t0)), resp);
    if (st.ok()) {
      ASSERT_EQ(resp.accepted(), 1000u) << resp.rejections(0).DebugString();
      acked += 1000;
    } else {
      refused = st;
    }
  }
  ASSERT_FALSE(refused.ok()) << "the disk never filled up";
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_GT(acked, 0u);
  // Reads of patient data are refused too while their audit entry cannot be
  // written (nothing is disclosed without its record).
  auto read = read_patient_twin(client);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << read.error_message();

  // Space returns: the node takes the same batch again without a restart.
  fs.free_ballast();
  grpc::Status retried;
  for (int i = 0; i < 100; ++i) {
    v1::IngestResponse resp;
    retried = client.send(api_client::request(device, batch_of(acked + 1, 1000, t0)), resp);
    if (retried.ok()) {
      EXPECT_EQ(resp.accepted(), 1000u);
      acked += 1000;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(retried.ok()) << retried.error_message() << "\n" << node->log();
  // Every acknowledged reading is readable; nothing beyond was acknowledged.
  EXPECT_EQ(client.history(patient, v1::METRIC_HEART_RATE, 0, now_ms()).size(), acked);

  // And after a restart everything acknowledged is there, once.
  ASSERT_EQ(node->stop(), 0) << node->log();
  node = std::make_unique<node_process>(fs.dir().path() / "node");
  ASSERT_TRUE(node->wait_ready()) << node->log();
  api_client again{node->channel()};
  EXPECT_EQ(again.history(patient, v1::METRIC_HEART_RATE, 0, now_ms()).size(), acked);
  EXPECT_EQ(node->stop(), 0) << node->log();
}

TEST(storage_faults_test, a_damaged_table_file_stops_the_start_naming_the_file) {
  temp_dir dir;
  {
    node_process node{dir.path(), {"--checkpoint-interval-ms=100"}};
    ASSERT_TRUE(node.wait_ready()) << node.log();
    api_client client{node.channel()};
    ASSERT_TRUE(client.create_patient("h1", "p1", "ICU-1").ok());
    ASSERT_TRUE(client.create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
    v1::IngestResponse resp;
    ASSERT_TRUE(client.send(api_client::request(device, batch_of(1, 1000, now_ms() - 3'600'000)), resp).ok());
    ASSERT_EQ(node.stop(), 0) << node.log();
  }
  {  // Flush everything into table files (the node stopped with it in the WAL).
    healthtwin::storage::store_settings s;
    s.data_dir = (dir.path() / "db").string();
    s.shards = 64;
    auto db = healthtwin::storage::store::open(s);
    ASSERT_TRUE(db) << healthtwin::storage::describe(db.error());
    for (auto c : {healthtwin::storage::column::registry, healthtwin::storage::column::twins,
                   healthtwin::storage::column::log})
      ASSERT_FALSE((*db)->compact(c));
  }
  // Overwrite every table file with garbage from its first byte on.
  std::vector<std::string> damaged;
  for (auto& e : std::filesystem::directory_iterator(dir.path() / "db")) {
    if (e.path().extension() != ".sst")
      continue;
    std::fstream f{e.path(), std::ios::in | std::ios::out | std::ios::binary};
    auto size = std::filesystem::file_size(e.path());
    for (uint64_t at = 0; at < size; at += 97) {
      f.seekp(static_cast<std::streamoff>(at));
      f.put('\xA5');
    }
    damaged.push_back(e.path().filename().string());
  }
  ASSERT_FALSE(damaged.empty());

  node_process node{dir.path()};
  EXPECT_FALSE(node.wait_ready(std::chrono::seconds(30)));
  auto status = node.process().wait(std::chrono::seconds(30));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status << "\n" << node.log();
  bool named = false;
  for (auto& name : damaged)
    named = named || node.log().find(name) != std::string::npos;
  EXPECT_TRUE(named) << "the log names none of the damaged files:\n" << node.log();
}

TEST(storage_faults_test, failing_writes_answer_unavailable_without_acking) {
  failing_filesystem fs;
  if (!fs.mounted())
    GTEST_SKIP() << fs.why_not();
  // The node's log and keys stay off the failing disk; its store is on it.
  temp_dir home;
  std::filesystem::create_directories(fs.path() / "db");
  std::filesystem::create_directory_symlink(fs.path() / "db", home.path() / "db");
  auto node = std::make_unique<node_process>(home.path());
  ASSERT_TRUE(node->wait_ready()) << node->log();
  api_client client{node->channel()};
  ASSERT_TRUE(client.create_patient("h1", "p1", "ICU-1").ok());
  ASSERT_TRUE(client.create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
  auto t0 = now_ms() - 86'400'000LL;
  uint64_t acked = 0;  // readings 1..acked are acknowledged
  for (int i = 0; i < 5; ++i) {
    v1::IngestResponse resp;
    ASSERT_TRUE(client.send(api_client::request(device, batch_of(acked + 1, 1000, t0)), resp).ok());
    acked += 1000;
  }

  // The disk fails: every batch is refused with UNAVAILABLE within its
  // deadline, none is acknowledged, and the node keeps running.
  fs.fail();
  for (int i = 0; i < 5; ++i) {
    v1::IngestResponse resp;
    auto st = client.send(api_client::request(device, batch_of(acked + 1, 1000, t0)), resp);
    ASSERT_FALSE(st.ok()) << "acknowledged a batch the disk could not hold";
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  }
  // Reads of patient data are refused while their audit entry cannot be written.
  auto read = read_patient_twin(client);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::UNAVAILABLE) << read.error_message();
  // The node stays up and says why it is unhealthy: RocksDB cannot resume
  // after a failed WAL write, so it needs a restart (Kubernetes' liveness
  // probe does that).
  EXPECT_TRUE(node->process().running()) << node->log();
  auto health = run_command(node->curl("/healthz", "-w ' %{http_code}'"));
  EXPECT_NE(health.find("unhealthy: storage writes fail"), std::string::npos) << health;
  EXPECT_NE(health.find(" 503"), std::string::npos) << health;
  EXPECT_NE(run_command(node->curl("/readyz", "-w ' %{http_code}'")).find(" 503"), std::string::npos);

  // The disk heals; still nothing beyond what was acknowledged went in.
  fs.heal();
  EXPECT_NE(node->stop(), -1) << "the node hung stopping\n" << node->log();

  // After a restart everything acknowledged is there, once, and the node
  // takes the refused batch.
  node = std::make_unique<node_process>(home.path());
  ASSERT_TRUE(node->wait_ready()) << node->log();
  api_client again{node->channel()};
  EXPECT_EQ(again.history(patient, v1::METRIC_HEART_RATE, 0, now_ms()).size(), acked);
  v1::IngestResponse resp;
  auto st = again.send(api_client::request(device, batch_of(acked + 1, 1000, t0)), resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(again.history(patient, v1::METRIC_HEART_RATE, 0, now_ms()).size(), acked + 1000);
  EXPECT_EQ(run_command(node->curl("/healthz")), "ok\n");
  EXPECT_EQ(node->stop(), 0) << node->log();
}
