// `twinctl audit verify` on a real data directory: exit 0 and the count when
// the chain is intact; exit 1 naming the first broken link after one byte of
// a stored entry is altered.

#include <cstdio>

#include <gtest/gtest.h>

#include "storage/audit_log.hpp"
#include "storage/key_codec.hpp"
#include "storage/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin;

namespace {

struct run_result {
  int exit_code = -1;
  std::string output;
};

run_result twinctl(const std::string& args) {
  run_result r;
  auto cmd = std::string{HEALTHTWIN_TWINCTL_BINARY} + " " + args + " 2>&1";
  auto* p = popen(cmd.c_str(), "r");
  char buf[256];
  while (fgets(buf, sizeof buf, p))
    r.output += buf;
  auto status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST(twinctl_test, audit_verify_reports_the_first_broken_link) {
  healthtwin::testing::temp_dir dir;
  storage::store_settings s;
  s.data_dir = dir.str() + "/db";
  {
    auto st = storage::store::open(s);
    ASSERT_TRUE(st);
    storage::audit_log log{**st};
    ASSERT_FALSE(log.open());
    for (int i = 1; i <= 30; ++i)
      ASSERT_FALSE(log.append({"nurse-1", "tenants/h1/patients/p1", "TwinService/GetPatientTwin",
                               "ok", 1000 + i}));
  }
  auto ok = twinctl("audit verify --data-dir " + s.data_dir);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("intact: 30 entries"), std::string::npos) << ok.output;

  {
    auto st = storage::store::open(s);
    ASSERT_TRUE(st);
    std::string key{"e"};
    storage::key_codec::put_u64(key, 12);
    auto v = (*st)->get(storage::column::audit, key);
    ASSERT_TRUE(v && *v);
    auto altered = **v;
    altered[altered.size() / 2] ^= 0x20;
    storage::write_batch b{**st};
    b.put(storage::column::audit, key, altered);
    ASSERT_FALSE((*st)->write(b, true));
  }
  auto bad = twinctl("audit verify --data-dir " + s.data_dir);
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("BROKEN at entry 12"), std::string::npos) << bad.output;

  auto missing = twinctl("audit verify --data-dir " + dir.str() + "/nope");
  EXPECT_NE(missing.exit_code, 0);
}
