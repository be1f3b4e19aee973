// Raft groups of three members in one process, each member with its own
// mutual-TLS tunnels on 127.0.0.1 and its own log directory: commits reach
// every member in order, a stopped leader is replaced and catches up, a
// member far behind is restored from a snapshot, nothing commits without a
// majority, and tunnels refuse certificates that do not name their member.

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "services/peer/raft_group.hpp"
#include "services/peer/raft_tunnels.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/unit/services/peer/raft_test_support.hpp"

namespace healthtwin::services {
namespace {

using namespace std::chrono_literals;

using testing::eventually;
using testing::slurp;

// The applied entries, as a list of strings; its snapshot is the list.
class memory_log : public raft_state_machine {
public:
  void apply(uint64_t index, std::string_view entry) override {
    std::lock_guard lock{mutex_};
    EXPECT_GT(index, last_index_);
    last_index_ = index;
    entries_.emplace_back(entry);
  }
  std::string snapshot() override {
    std::lock_guard lock{mutex_};
    std::string out;
    for (auto& e : entries_)
      out += e + '\n';
    ++snapshots_;
    return out;
  }
  bool restore(std::string_view s) override {
    std::lock_guard lock{mutex_};
    entries_.clear();
    for (size_t at = 0; at < s.size();) {
      auto end = s.find('\n', at);
      if (end == std::string_view::npos)
        return false;
      entries_.emplace_back(s.substr(at, end - at));
      at = end + 1;
    }
    ++restores_;
    return true;
  }
  std::vector<std::string> entries() const {
    std::lock_guard lock{mutex_};
    return entries_;
  }
  int snapshots() const {
    std::lock_guard lock{mutex_};
    return snapshots_;
  }
  int restores() const {
    std::lock_guard lock{mutex_};
    return restores_;
  }

private:
  mutable std::mutex mutex_;
  std::vector<std::string> entries_;
  uint64_t last_index_ = 0;
  int snapshots_ = 0, restores_ = 0;
};

std::vector<std::string> numbered(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i)
    out.push_back("entry-" + std::to_string(i));
  return out;
}

class raft_group_test : public ::testing::Test {
protected:
  static constexpr uint64_t group_id = 42;

  void SetUp() override {
    for (auto& t : net_.tunnels)
      members_.emplace_back().tunnels = t.get();
  }

  void TearDown() override {
    for (auto& m : members_)
      m.group.reset();
  }

  struct member {
    raft_tunnels* tunnels = nullptr;
    std::unique_ptr<memory_log> log = std::make_unique<memory_log>();
    std::unique_ptr<raft_group> group;
  };

  // Starts (or restarts, with a fresh state machine) member i.
  void start(int i) {
    raft_group_settings s;
    s.group = group_id;
    s.members = net_.peers;
    s.dir = (dir_.path() / ("n" + std::to_string(i + 1))).string();
    s.election_timeout = 300ms;
    s.heartbeat = 50ms;
    s.snapshot_threshold = snapshot_threshold_;
    s.snapshot_trailing = snapshot_threshold_ / 4;
    s.entry_key = keys_[i];
    s.home = home_;
    auto& m = members_[i];
    m.group.reset();
    m.log = std::make_unique<memory_log>();
    std::string why;
    m.group = raft_group::start(s, *m.tunnels, *m.log, why);
    ASSERT_TRUE(m.group) << why;
  }

  void start_all() {
    for (int i = 0; i < 3; ++i)
      start(i);
  }

  void stop(int i) { members_[i].group.reset(); }

  // The member that leads, once one does (-1 if none within `within`).
  int leader(std::chrono::milliseconds within = 10s) {
    int found = -1;
    eventually(
        [&] {
          for (int i = 0; i < 3; ++i)
            if (members_[i].group && members_[i].group->status().leading)
              return (found = i) >= 0;
          return false;
        },
        within);
    return found;
  }

  raft_commit propose(int i, const std::string& entry, std::chrono::milliseconds within = 5s) {
    auto answer = std::make_shared<std::promise<raft_commit>>();
    auto f = answer->get_future();
    members_[i].group->propose(entry, [answer](const raft_commit& c) { answer->set_value(c); });
    if (f.wait_for(within) != std::future_status::ready)
      return {0, 0, "no answer within the test's deadline"};
    return f.get();
  }

  // Proposes the entries at the leader, resending to a new leader what
  // failed; every one must commit.
  void commit_all(const std::vector<std::string>& entries) {
    for (auto& e : entries) {
      raft_commit c{0, 0, "not proposed"};
      for (int attempt = 0; attempt < 20 && !c.committed(); ++attempt) {
        int l = leader();
        ASSERT_GE(l, 0) << "no leader";
        c = propose(l, e);
      }
      ASSERT_TRUE(c.committed()) << e << ": " << c.error;
    }
  }

  ::testing::AssertionResult holds(int i, const std::vector<std::string>& expected,
                                   std::chrono::milliseconds within = 10s) {
    if (eventually([&] { return members_[i].log->entries() == expected; }, within))
      return ::testing::AssertionSuccess();
    auto got = members_[i].log->entries();
    auto r = ::testing::AssertionFailure() << "n" << i + 1 << " holds " << got.size() << " entries:";
    for (size_t k = 0; k < got.size() && k < 5; ++k)
      r << " " << got[k];
    return r;
  }

  testing::temp_dir dir_;
  testing::three_tunnels net_{dir_.path() / "pki"};
  std::vector<member> members_;
  unsigned snapshot_threshold_ = 4096;
  std::string home_;
  std::array<std::optional<std::array<uint8_t, 32>>, 3> keys_{key(1), key(1), key(1)};

  static std::array<uint8_t, 32> key(uint8_t fill) {
    std::array<uint8_t, 32> k;
    k.fill(fill);
    return k;
  }

  // Whether any file under member i's directory holds `text`.
  bool on_disk(int i, const std::string& text) {
    for (auto& f : std::filesystem::recursive_directory_iterator(dir_.path() / ("n" + std::to_string(i + 1))))
      if (f.is_regular_file() && slurp(f.path()).find(text) != std::string::npos)
        return true;
    return false;
  }
};

TEST_F(raft_group_test, commits_reach_every_member_in_log_order) {
  start_all();
  int l = leader();
  ASSERT_GE(l, 0);
  // Pipelined: 200 proposals in flight at once.
  std::mutex m;
  std::vector<raft_commit> commits;
  std::condition_variable cv;
  auto entries = numbered(0, 200);
  for (auto& e : entries)
    members_[l].group->propose(e, [&](const raft_commit& c) {
      std::lock_guard lock{m};
      commits.push_back(c);
      cv.notify_one();
    });
  std::unique_lock lock{m};
  ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return commits.size() == entries.size(); }));
  for (size_t i = 0; i < commits.size(); ++i) {
    ASSERT_TRUE(commits[i].committed()) << commits[i].error;
    if (i > 0) {
      EXPECT_EQ(commits[i].index, commits[i - 1].index + 1);
    }
    EXPECT_EQ(commits[i].term, members_[l].group->status().term);
  }
  lock.unlock();
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(holds(i, entries)) << "member n" << i + 1;
}

TEST_F(raft_group_test, a_follower_refuses_proposals_and_names_the_leader) {
  start_all();
  int l = leader();
  ASSERT_GE(l, 0);
  int follower = (l + 1) % 3;
  ASSERT_TRUE(eventually([&] { return !members_[follower].group->status().leader.empty(); }, 5s));
  auto c = propose(follower, "refused");
  EXPECT_FALSE(c.committed());
  EXPECT_NE(c.error.find("not the leader (" + net_.peers[l].name + " leads)"), std::string::npos) << c.error;
  commit_all({"kept"});
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(holds(i, {"kept"}));
}

TEST_F(raft_group_test, a_leader_that_hands_over_is_replaced_by_another_member) {
  start_all();
  commit_all({"before"});
  int old = leader();
  ASSERT_GE(old, 0);
  members_[old].group->hand_over();
  ASSERT_TRUE(eventually([&] {
    for (int i = 0; i < 3; ++i)
      if (i != old && members_[i].group->status().leading)
        return true;
    return false;
  }, 5s)) << "another member leads";
  EXPECT_FALSE(members_[old].group->status().leading);
  commit_all({"after"});
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(holds(i, {"before", "after"}));
}

TEST_F(raft_group_test, a_stopped_leader_is_replaced_and_catches_up_when_it_returns) {
  start_all();
  auto first = numbered(0, 50);
  commit_all(first);
  int old = leader();
  ASSERT_GE(old, 0);
  auto term = members_[old].group->status().term;
  stop(old);
  auto t0 = std::chrono::steady_clock::now();
  int next = leader();
  ASSERT_GE(next, 0);
  ASSERT_NE(next, old);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_GT(members_[next].group->status().term, term);
  auto second = numbered(50, 100);
  commit_all(second);
  auto all = first;
  all.insert(all.end(), second.begin(), second.end());
  start(old);  // from its own directory, with an empty state machine
  EXPECT_TRUE(holds(old, all)) << "the returning member replays its log and catches up";
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(holds(i, all));
}

TEST_F(raft_group_test, a_member_far_behind_is_restored_from_a_snapshot) {
  snapshot_threshold_ = 32;
  start_all();
  int l = leader();
  ASSERT_GE(l, 0);
  int behind = (l + 1) % 3;
  stop(behind);
  auto entries = numbered(0, 200);
  commit_all(entries);
  EXPECT_GT(members_[leader()].log->snapshots(), 0);
  start(behind);
  EXPECT_TRUE(holds(behind, entries));
  EXPECT_GT(members_[behind].log->restores(), 0) << "the log before the snapshot was truncated";
}

TEST_F(raft_group_test, nothing_commits_without_a_majority) {
  start_all();
  commit_all({"before"});
  int l = leader();
  ASSERT_GE(l, 0);
  int a = (l + 1) % 3, b = (l + 2) % 3;
  stop(a);
  stop(b);
  // The lone leader may take the proposal, but it cannot commit it; it
  // steps down once it misses a majority's heartbeats.
  auto c = propose(l, "alone", 3s);
  EXPECT_FALSE(c.committed());
  EXPECT_TRUE(eventually([&] { return !members_[l].group->status().leading; }, 5s));
  EXPECT_EQ(members_[l].log->entries(), std::vector<std::string>{"before"});
  start(a);
  commit_all({"after"});
  // "alone" may have been committed by the next leader (it was in the old
  // leader's log); it never counted as committed when it was proposed.
  std::vector<std::string> held;
  EXPECT_TRUE(eventually(
      [&] {
        held = members_[a].log->entries();
        return held.size() >= 2 && held.back() == "after";
      },
      10s));
  ASSERT_FALSE(held.empty());
  EXPECT_EQ(held.front(), "before");
  EXPECT_LE(held.size(), 3u);
}

TEST_F(raft_group_test, leadership_goes_to_the_home_member_whenever_it_can_lead) {
  home_ = "n2";
  start_all();
  auto n2_leads = [&] { return members_[1].group->status().leading; };
  EXPECT_TRUE(testing::eventually(n2_leads, 10s));
  commit_all({"a"});
  stop(1);
  int other = leader();
  ASSERT_GE(other, 0);
  EXPECT_NE(other, 1);
  commit_all({"b"});
  start(1);
  EXPECT_TRUE(testing::eventually(n2_leads, 10s)) << "the returning home member leads again";
  commit_all({"c"});
  EXPECT_TRUE(holds(1, {"a", "b", "c"}));
}

// The home led, took an entry it could not commit (its majority was gone)
// and stopped; the others elected a leader meanwhile. The home's log ends
// in that entry: the leader must replace it before it can hand over.
TEST_F(raft_group_test, a_home_member_holding_an_uncommitted_entry_leads_again) {
  home_ = "n1";
  start_all();
  ASSERT_TRUE(testing::eventually([&] { return members_[0].group->status().leading; }, 10s));
  commit_all({"a"});
  stop(1);
  stop(2);
  auto c = propose(0, "never committed", 2s);
  EXPECT_FALSE(c.committed());
  stop(0);
  start(1);
  start(2);
  int other = leader();
  ASSERT_GE(other, 1);
  start(0);
  EXPECT_TRUE(testing::eventually([&] { return members_[0].group->status().leading; }, 15s))
      << "the home leads again";
  commit_all({"b"});
  EXPECT_TRUE(holds(0, {"a", "b"}));
}

TEST_F(raft_group_test, a_barrier_applies_what_was_committed_before_it) {
  start_all();
  int l = leader();
  ASSERT_GE(l, 0);
  commit_all(numbered(0, 30));
  std::promise<raft_commit> done;
  members_[l].group->barrier([&](const raft_commit& c) { done.set_value(c); });
  auto c = done.get_future().get();
  EXPECT_TRUE(c.committed()) << c.error;
  EXPECT_EQ(members_[l].log->entries(), numbered(0, 30));
  std::promise<raft_commit> refused;
  members_[(l + 1) % 3].group->barrier([&](const raft_commit& c) { refused.set_value(c); });
  EXPECT_FALSE(refused.get_future().get().committed());
}

TEST_F(raft_group_test, entries_and_snapshots_are_sealed_on_disk) {
  snapshot_threshold_ = 16;
  start_all();
  std::vector<std::string> entries;
  for (int i = 0; i < 40; ++i)
    entries.push_back("patient-7f3a heart rate 188 #" + std::to_string(i));
  commit_all(entries);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(holds(i, entries));
    EXPECT_FALSE(on_disk(i, "patient-7f3a")) << "n" << i + 1 << " stored an entry in the clear";
  }
  EXPECT_GT(members_[0].log->snapshots(), 0);
}

TEST_F(raft_group_test, without_a_key_entries_are_stored_as_they_are) {
  keys_ = {std::nullopt, std::nullopt, std::nullopt};
  start_all();
  commit_all({"patient-7f3a heart rate 188"});
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(holds(i, {"patient-7f3a heart rate 188"}));
    EXPECT_TRUE(on_disk(i, "patient-7f3a")) << "the scan of the sealed test would find the clear text";
  }
}

TEST_F(raft_group_test, a_member_with_another_key_or_none_applies_nothing) {
  for (auto other : {std::optional{key(2)}, std::optional<std::array<uint8_t, 32>>{}}) {
    keys_[2] = other;
    // n3 joins once n1 or n2 leads (a stable leader keeps it from leading).
    start(0);
    start(1);
    ASSERT_GE(leader(), 0);
    start(2);
    auto entries = numbered(0, 20);
    commit_all(entries);
    EXPECT_TRUE(holds(0, entries));
    EXPECT_TRUE(holds(1, entries));
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(members_[2].log->entries().empty()) << (other ? "another key" : "no key");
    for (int i = 0; i < 3; ++i)
      stop(i);
    std::filesystem::remove_all(dir_.path() / "n1");
    std::filesystem::remove_all(dir_.path() / "n2");
    std::filesystem::remove_all(dir_.path() / "n3");
  }
}

// ---- the tunnels alone ----

class raft_tunnels_test : public ::testing::Test {
protected:
  void SetUp() override {
    testing::test_pki pki{dir_.path() / "pki"};
    node_ = {slurp(pki.node_cert), slurp(pki.node_key), slurp(pki.ca_cert)};
    foreign_ = {slurp(pki.other_client_cert), slurp(pki.other_client_key), slurp(pki.ca_cert)};
    std::string why;
    listener_ = raft_tunnels::open("n1", "127.0.0.1:0", node_, why);
    ASSERT_TRUE(listener_) << why;
  }

  raft_peer listener_peer() const { return {"n1", "127.0.0.1:" + std::to_string(listener_->port())}; }

  // Dials the listener as `tunnels` for group 7; the connect's outcome.
  std::string dial(raft_tunnels& tunnels) {
    std::promise<std::string> outcome;
    tunnels.connect(7, listener_peer(), [&](int fd, const std::string& error) {
      if (fd >= 0)
        ::close(fd);
      outcome.set_value(fd >= 0 ? "connected" : error);
    });
    return outcome.get_future().get();
  }

  testing::temp_dir dir_;
  tunnel_credentials node_, foreign_;
  std::unique_ptr<raft_tunnels> listener_;
};

TEST_F(raft_tunnels_test, a_member_whose_certificate_names_it_is_accepted_others_are_refused) {
  std::mutex m;
  std::vector<std::string> accepted;
  // "node" is the test certificate's common name; "n9"'s address is a host
  // the certificate does not name.
  listener_->serve(7, {{"node", "127.0.0.9:1"}, {"n9", "10.9.9.9:1"}}, [&](const std::string& peer, int fd) {
    ::close(fd);
    std::lock_guard lock{m};
    accepted.push_back(peer);
  });
  std::string why;
  auto named = raft_tunnels::open("node", "127.0.0.1:0", node_, why);
  auto unnamed = raft_tunnels::open("n9", "127.0.0.1:0", node_, why);
  auto stranger = raft_tunnels::open("n5", "127.0.0.1:0", node_, why);
  ASSERT_TRUE(named && unnamed && stranger) << why;
  EXPECT_EQ(dial(*named), "connected");
  EXPECT_EQ(dial(*unnamed), "connected");   // refused after its preamble
  EXPECT_EQ(dial(*stranger), "connected");  // not a member of group 7
  ASSERT_TRUE(eventually([&] { return listener_->refused() == 2; }, 5s)) << listener_->refused();
  std::lock_guard lock{m};
  EXPECT_EQ(accepted, std::vector<std::string>{"node"});
}

TEST_F(raft_tunnels_test, a_certificate_of_another_ca_fails_the_handshake) {
  listener_->serve(7, {{"other-client", "127.0.0.1:1"}}, [](const std::string&, int fd) { ::close(fd); });
  std::string why;
  auto foreign = raft_tunnels::open("other-client", "127.0.0.1:0", foreign_, why);
  ASSERT_TRUE(foreign) << why;
  auto outcome = dial(*foreign);
  // The client may learn of the refusal at its handshake or only when it
  // next reads; the listener refuses either way and accepts nothing.
  EXPECT_TRUE(eventually([&] { return listener_->refused() == 1; }, 5s));
  (void)outcome;
}

TEST_F(raft_tunnels_test, an_unserved_group_is_refused) {
  std::string why;
  auto dialler = raft_tunnels::open("node", "127.0.0.1:0", node_, why);
  ASSERT_TRUE(dialler) << why;
  dial(*dialler);
  EXPECT_TRUE(eventually([&] { return listener_->refused() == 1; }, 5s));
}

TEST(raft_id_of, is_stable_and_never_zero) {
  EXPECT_EQ(raft_id_of("healthtwin-0"), raft_id_of("healthtwin-0"));
  EXPECT_NE(raft_id_of("healthtwin-0"), raft_id_of("healthtwin-1"));
  EXPECT_NE(raft_id_of(""), 0u);
}

}  // namespace
}  // namespace healthtwin::services
