#include "actors/models/twin_name.hpp"

#include <gtest/gtest.h>

using namespace healthtwin::models;

TEST(twin_name, parses_patient_and_device_names) {
  auto p = parse_twin_name("tenants/st-marys/patients/p-001");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->tenant, "st-marys");
  EXPECT_EQ(p->kind, twin_kind::patient);
  EXPECT_EQ(p->id, "p-001");
  auto d = parse_twin_name("tenants/h1/devices/mon-7");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, twin_kind::device);
}

TEST(twin_name, rejects_malformed_names) {
  for (auto bad : {"", "tenants/", "tenants/h1", "tenants/h1/patients", "tenants/h1/patients/",
                   "tenants/H1/patients/p", "tenants/h1/patients/P", "tenants/h1/nurses/p",
                   "tenants/h1/patients/p/extra", "tenant/h1/patients/p",
                   "tenants/-h/patients/p", "tenants/h1/patients/p_1",
                   "tenants/h1/patients/p\n"})
    EXPECT_FALSE(parse_twin_name(bad)) << bad;
  EXPECT_FALSE(parse_twin_name("tenants/h1/patients/" + std::string(64, 'a')));
  EXPECT_TRUE(parse_twin_name("tenants/h1/patients/" + std::string(63, 'a')));
}

TEST(twin_name, parses_alert_names) {
  auto a = parse_alert_name("tenants/h1/patients/p-1/alerts/abc123");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->owner, "tenants/h1/patients/p-1");
  EXPECT_EQ(a->tenant, "h1");
  EXPECT_EQ(a->id, "abc123");
  auto d = parse_alert_name("tenants/h1/devices/d/alerts/x");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->owner, "tenants/h1/devices/d");
  EXPECT_EQ(d->kind, twin_kind::device);
  EXPECT_FALSE(parse_alert_name("tenants/h1/wards/w/alerts/x"));
  EXPECT_FALSE(parse_alert_name("tenants/h1/patients/p-1/alerts/"));
}

TEST(twin_name, builds_names_and_finds_the_tenant) {
  EXPECT_EQ(patient_name("h1", "p"), "tenants/h1/patients/p");
  EXPECT_EQ(device_name("h1", "d"), "tenants/h1/devices/d");
  EXPECT_EQ(tenant_of("tenants/h1/devices/d"), "h1");
  EXPECT_EQ(parse_tenant_name("tenants/h1"), std::string_view{"h1"});
  EXPECT_FALSE(parse_tenant_name("tenants/h1/x"));
}

// The shard hash is part of the on-disk format and of cluster placement:
// these vectors must never change. The first three are XXH64's published
// reference values (seed 0).
TEST(twin_name, hash_is_xxh64_seed_0) {
  EXPECT_EQ(twin_hash(""), 0xEF46DB3751D8E999ull);
  EXPECT_EQ(twin_hash("a"), 0xD24EC4F1A98C6E5Bull);
  EXPECT_EQ(twin_hash("abc"), 0x44BC2CF5AD770999ull);
}

TEST(twin_name, shard_assignment_is_pinned) {
  EXPECT_EQ(twin_hash("tenants/h1/patients/p-1"), 0x045593c6394ca60dull);
  EXPECT_EQ(shard_of("tenants/h1/patients/p-1", 1024), 525u);
  EXPECT_EQ(shard_of("tenants/h1/devices/mon-1", 1024), 43u);
  EXPECT_EQ(shard_of("tenants/h1/devices/mon-1", 7), 4u);
  EXPECT_EQ(shard_of("tenants/h1/devices/mon-1", 1), 0u);
}
