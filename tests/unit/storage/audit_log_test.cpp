#include "storage/audit_log.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "storage/key_codec.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin::storage;

namespace {

class audit_log_test : public healthtwin::testing::store_fixture {
protected:
  void fill(int n) {
    audit_log log{db()};
    ASSERT_FALSE(log.open());
    for (int i = 1; i <= n; ++i) {
      audit_entry e{"dr-who", "tenants/h1/patients/p" + std::to_string(i % 7),
                    "AlertService/AcknowledgeAlert", "ok", 1000 + i};
      ASSERT_FALSE(log.append(e));
    }
  }

  std::string key(uint64_t seq) {
    std::string k{"e"};
    key_codec::put_u64(k, seq);
    return k;
  }

  void overwrite(uint64_t seq, const std::string& value) {
    write_batch b{db()};
    b.put(column::audit, key(seq), value);
    ASSERT_FALSE(db().write(b, true));
  }

  audit_verdict verify() {
    auto v = audit_log::verify(db());
    EXPECT_TRUE(v);
    return v ? *v : audit_verdict{};
  }
};

}  // namespace

TEST_F(audit_log_test, an_intact_chain_verifies_and_continues_after_reopening) {
  fill(50);
  reopen();
  audit_log log{db()};
  ASSERT_FALSE(log.open());
  EXPECT_EQ(log.head(), 50u);
  ASSERT_FALSE(log.append({"svc", "tenants/h1/devices/d", "RegistryService/CreateDevice", "ok", 9}));
  auto v = verify();
  EXPECT_EQ(v.entries, 51u);
  EXPECT_FALSE(v.first_broken);
}

TEST_F(audit_log_test, altering_any_byte_of_an_entry_names_the_first_broken_link) {
  fill(40);
  auto stored = db().get(column::audit, key(17));
  ASSERT_TRUE(stored && *stored);
  // Flip every byte position of entry 17 in turn: each is caught at 17.
  for (size_t i = 0; i < (*stored)->size(); ++i) {
    auto altered = **stored;
    altered[i] = static_cast<char>(altered[i] ^ 0x01);
    overwrite(17, altered);
    auto v = verify();
    ASSERT_TRUE(v.first_broken) << "byte " << i;
    EXPECT_EQ(*v.first_broken, 17u) << "byte " << i << ": " << v.reason;
    EXPECT_EQ(v.entries, 16u);
  }
  overwrite(17, **stored);
  EXPECT_FALSE(verify().first_broken);
}

TEST_F(audit_log_test, a_removed_or_reordered_entry_breaks_the_chain) {
  fill(10);
  auto e4 = db().get(column::audit, key(4));
  auto e5 = db().get(column::audit, key(5));
  overwrite(4, **e5);  // swap 4 and 5
  overwrite(5, **e4);
  auto v = verify();
  ASSERT_TRUE(v.first_broken);
  EXPECT_EQ(*v.first_broken, 4u);
  overwrite(4, **e4);
  overwrite(5, **e5);
  write_batch b{db()};
  b.erase(column::audit, key(6));
  ASSERT_FALSE(db().write(b, true));
  v = verify();
  ASSERT_TRUE(v.first_broken);
  EXPECT_EQ(*v.first_broken, 6u);
  EXPECT_NE(v.reason.find("missing"), std::string::npos);
}

TEST_F(audit_log_test, concurrent_appends_share_synced_writes_and_keep_one_intact_chain) {
  constexpr int threads = 8, per_thread = 100;
  uint64_t commits = 0;
  {
    audit_log log{db()};
    ASSERT_FALSE(log.open());
    std::vector<std::thread> callers;
    for (int t = 0; t < threads; ++t)
      callers.emplace_back([&log, t] {
        for (int i = 0; i < per_thread; ++i)
          EXPECT_FALSE(log.append({"svc-" + std::to_string(t), "tenants/h1", "IngestService/Ingest",
                                   "OK", i}));
      });
    for (auto& c : callers)
      c.join();
    EXPECT_EQ(log.head(), uint64_t{threads * per_thread});
    commits = log.commits();
  }
  EXPECT_LT(commits, uint64_t{threads * per_thread}) << "every entry had its own fsync";
  auto v = verify();
  EXPECT_EQ(v.entries, uint64_t{threads * per_thread});
  EXPECT_FALSE(v.first_broken);
}

TEST_F(audit_log_test, async_appends_report_once_durable_and_are_written_before_the_log_closes) {
  std::atomic<int> done{0};
  {
    audit_log log{db()};
    ASSERT_FALSE(log.open());
    for (int i = 0; i < 20; ++i)
      log.append_async({"dev-1", "tenants/h1/devices/d1", "IngestService/Ingest", "OK", i},
                       [&done](const caf::error& err) {
                         EXPECT_FALSE(err);
                         ++done;
                       });
  }  // the destructor writes what is queued
  EXPECT_EQ(done.load(), 20);
  EXPECT_EQ(verify().entries, 20u);
}

TEST_F(audit_log_test, an_unopened_log_refuses_appends) {
  audit_log log{db()};
  EXPECT_TRUE(log.append({"svc", "tenants/h1", "RegistryService/CreatePatient", "OK", 1}));
}

TEST_F(audit_log_test, patients_and_devices_are_stored_by_pseudonym_and_nothing_else_changes) {
  auto p1 = audit_log::stored_resource(db(), "tenants/h1/patients/p1");
  EXPECT_EQ(p1, "tenants/h1/patients/~" + db().pseudonym("tenants/h1/patients/p1"));
  EXPECT_EQ(audit_log::stored_resource(db(), "tenants/h1/patients/p1/alerts/a7"), p1 + "/alerts/a7");
  EXPECT_NE(audit_log::stored_resource(db(), "tenants/h2/patients/p1"), p1);  // tenant-scoped
  auto d1 = audit_log::stored_resource(db(), "tenants/h1/devices/d1");
  EXPECT_EQ(d1, "tenants/h1/devices/~" + db().pseudonym("tenants/h1/devices/d1"));
  EXPECT_NE(d1.substr(d1.find('~')), p1.substr(p1.find('~')));
  for (auto kept : {"tenants/h1", "", "tenants/h1/patients/", "tenants/h1/devices/", "tenants/h1/rollouts/r1",
                    p1.c_str(), d1.c_str()})
    EXPECT_EQ(audit_log::stored_resource(db(), kept), kept);
  {
    audit_log log{db()};
    ASSERT_FALSE(log.open());
    ASSERT_FALSE(log.append({"h1/dr-a", "tenants/h1/patients/p1", "TwinService/GetPatientTwin", "OK", 1}));
  }
  std::string stored;
  ASSERT_FALSE(audit_log::read(db(), [&](uint64_t, const audit_entry& e) {
    stored = e.resource;
    return true;
  }));
  EXPECT_EQ(stored, p1);
}
