// A copy of a store for a voter behind its group's snapshot (ADR 0040):
// what the leader sends through a stream is, once installed, a store that
// opens with every record and the replicated index; the voter's Raft state
// is kept; a broken or hostile stream stages nothing.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "services/peer/store_copy.hpp"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/store.hpp"
#include "tests/support/temp_dir.hpp"

namespace healthtwin::services {
namespace {

namespace fs = std::filesystem;
using storage::column;

std::unique_ptr<storage::store> open_store(const fs::path& dir) {
  storage::store_settings ss;
  ss.data_dir = dir.string();
  ss.shards = 16;
  auto opened = storage::store::open(ss);
  EXPECT_TRUE(opened) << storage::describe(opened.error());
  return opened ? std::move(*opened) : nullptr;
}

// The bytes `send` writes to one end of a socket pair, read at the other by receive_store_copy.
std::string receive_from(const std::function<void(int)>& send, const fs::path& staged, uint64_t& index) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::thread sender{[&] {
    send(fds[0]);
    ::close(fds[0]);
  }};
  auto why = receive_store_copy(fds[1], staged.string(), index, uint64_t{1} << 30, 5);
  ::close(fds[1]);
  sender.join();
  return why;
}

TEST(store_copy, an_installed_copy_is_the_leaders_store_and_keeps_the_voters_raft_state) {
  testing::temp_dir dir;
  auto leader = open_store(dir.path() / "leader");
  ASSERT_TRUE(leader);
  // Batches as the group commits them: taken from write() by a replicator, applied with their index.
  struct capture final : storage::write_replicator {
    std::string last;
    caf::error replicate(std::string_view batch) override {
      last = std::string{batch};
      return caf::none;
    }
  } batches;
  for (int i = 0; i < 200; ++i) {
    leader->replicate_through(&batches);
    storage::write_batch wb{*leader};
    wb.put(column::registry, "device-" + std::to_string(i), std::string(100, 'x'));
    ASSERT_FALSE(leader->write(wb, true));
    leader->replicate_through(nullptr);
    ASSERT_FALSE(leader->apply_replicated(i + 1, batches.last));
  }
  auto voter_dir = dir.path() / "voter";
  {
    auto voter = open_store(voter_dir);  // the voter's own, behind
    ASSERT_TRUE(voter);
  }
  fs::create_directories(voter_dir / "raft");
  std::ofstream{voter_dir / "raft" / "metadata1"} << "term and vote";

  uint64_t index = 0;
  auto staged = staged_path(voter_dir.string());
  auto why = receive_from([&](int fd) { EXPECT_EQ(send_store_copy(*leader, (dir.path() / "scratch").string(), fd), ""); },
                          staged, index);
  ASSERT_EQ(why, "");
  EXPECT_EQ(index, 200u);
  EXPECT_FALSE(fs::exists(dir.path() / "scratch")) << "the leader's checkpoint is removed after sending";
  EXPECT_TRUE(fs::exists(fs::path{staged} / "COMPLETE"));

  bool installed = false;
  ASSERT_EQ(install_staged_copy(voter_dir.string(), installed), "");
  EXPECT_TRUE(installed);
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_FALSE(fs::exists(voter_dir / "COMPLETE"));
  std::ifstream raft{voter_dir / "raft" / "metadata1"};
  std::string kept;
  std::getline(raft, kept);
  EXPECT_EQ(kept, "term and vote") << "the voter's Raft state stays its own";
  auto voter = open_store(voter_dir);
  ASSERT_TRUE(voter);
  EXPECT_EQ(voter->replicated_index(), 200u);
  auto v = voter->get(column::registry, "device-199");
  ASSERT_TRUE(v && *v);
  EXPECT_EQ(**v, std::string(100, 'x'));
  installed = true;
  ASSERT_EQ(install_staged_copy(voter_dir.string(), installed), "");
  EXPECT_FALSE(installed) << "nothing staged: nothing installed";
}

TEST(store_copy, a_broken_or_hostile_stream_stages_nothing) {
  testing::temp_dir dir;
  auto staged = (dir.path() / "db.copy").string();
  auto header = [](const std::string& name, uint64_t size) {
    std::string h;
    storage::key_codec::put_u32(h, static_cast<uint32_t>(name.size()));
    h += name;
    storage::key_codec::put_u64(h, size);
    return h;
  };
  auto refused = [&](const std::string& bytes, const std::string& says) {
    uint64_t index = 0;
    auto why = receive_from([&](int fd) { (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); }, staged, index);
    EXPECT_NE(why.find(says), std::string::npos) << why;
    EXPECT_FALSE(fs::exists(staged));
  };
  refused(header("../escape", 3) + "abc", "not a plain name");
  refused(header("COMPLETE", 0), "not a plain name");
  refused(header("000012.sst", 1000) + "short", "ended early");
  refused(header("000012.sst", uint64_t{1} << 40), "larger than");
  refused(header("000012.sst", 2) + "ab", "ended early (no file header)");
  std::string no_mark = header("CURRENT", 2) + "ab";
  storage::key_codec::put_u32(no_mark, 0);
  storage::key_codec::put_u64(no_mark, 7);
  refused(no_mark + "XXXX", "no end mark");
  bool installed = true;
  ASSERT_EQ(install_staged_copy((dir.path() / "db").string(), installed), "");
  EXPECT_FALSE(installed);
}

}  // namespace
}  // namespace healthtwin::services
