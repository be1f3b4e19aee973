#include "storage/retention.hpp"

#include <gtest/gtest.h>

#include "healthtwin/internal/records.pb.h"
#include "storage/alert_table.hpp"
#include "storage/series_table.hpp"
#include "tests/unit/storage/store_fixture.hpp"

using namespace healthtwin::storage;

namespace {

constexpr int64_t day = 86'400'000;

class retention_test : public healthtwin::testing::store_fixture {
protected:
  // A chunk of 10 samples ending at `end_ms`.
  void chunk(const std::string& patient, uint32_t no, int64_t end_ms) {
    series_chunk_builder b;
    for (int i = 9; i >= 0; --i)
      b.append(end_ms - i * 1000, 70);
    ASSERT_FALSE(series_table{db()}.put_chunk(patient, 1, no, b.finish()));
  }

  size_t samples(const std::string& patient) {
    std::vector<sample> out;
    EXPECT_FALSE(series_table{db()}.read(patient, 1, 0, INT64_MAX, 100, out));
    return out.size();
  }

  void alert(const std::string& patient, const std::string& id, bool resolved, int64_t t) {
    healthtwin::internal::AlertRecord r;
    r.set_name(patient + "/alerts/" + id);
    r.set_patient(patient);
    r.set_state(resolved ? 3 : 1);
    r.set_resolve_time_ms(resolved ? t : 0);
    healthtwin::internal::AlertEventRecord e;
    e.set_sequence(++events_);
    *e.mutable_alert() = r;
    e.set_event_time_ms(t);
    write_batch b{db()};
    ASSERT_FALSE(alert_table{db()}.put(b, patient, id, r.SerializeAsString(), !resolved));
    ASSERT_FALSE(alert_table{db()}.put_event(b, events_, patient, e.SerializeAsString()));
    ASSERT_FALSE(db().write(b, true));
  }

  bool has_alert(const std::string& patient, const std::string& id) {
    auto v = alert_table{db()}.get(patient, id);
    return v && *v;
  }

  uint64_t events_ = 0;
};

}  // namespace

TEST_F(retention_test, old_readings_go_per_tenant_policy_and_recent_ones_stay) {
  const std::string a = "tenants/h1/patients/a", b = "tenants/h2/patients/b";
  int64_t now = 1000 * day;
  chunk(a, 0, now - 40 * day);  // beyond 30 days
  chunk(a, 1, now - 29 * day);
  chunk(b, 0, now - 40 * day);  // h2 keeps 90 days
  retention_settings s;
  s.tenants["h2"].raw_readings_ms = 90 * day;
  auto r = enforce_retention(db(), s, now);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->series_chunks, 1u);
  EXPECT_EQ(samples(a), 10u);
  EXPECT_EQ(samples(b), 10u);
  // Time passes (injected clock): the rest expires in turn.
  r = enforce_retention(db(), s, now + 2 * day);
  EXPECT_EQ(r->series_chunks, 1u);
  EXPECT_EQ(samples(a), 0u);
  r = enforce_retention(db(), s, now + 60 * day);
  EXPECT_EQ(r->series_chunks, 1u);
  EXPECT_EQ(samples(b), 0u);
}

TEST_F(retention_test, resolved_alerts_and_events_expire_active_ones_never) {
  const std::string a = "tenants/h1/patients/a";
  int64_t now = 10'000 * day;
  alert(a, "1", true, now - 7 * 365 * day);  // resolved 7 years ago
  alert(a, "2", false, now - 7 * 365 * day);  // still active
  alert(a, "3", true, now - 1 * day);
  auto r = enforce_retention(db(), {}, now);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->alerts, 1u);
  EXPECT_EQ(r->alert_events, 2u);  // the events of alerts 1 and 2 (7 years old)
  EXPECT_FALSE(has_alert(a, "1"));
  EXPECT_TRUE(has_alert(a, "2"));
  EXPECT_TRUE(has_alert(a, "3"));
  size_t active = 0;
  EXPECT_FALSE(alert_table{db()}.scan_active([&](std::string_view) { ++active; }));
  EXPECT_EQ(active, 1u);
  // A second sweep at the same time finds nothing more.
  r = enforce_retention(db(), {}, now);
  EXPECT_EQ(r->series_chunks + r->alerts + r->alert_events, 0u);
}
