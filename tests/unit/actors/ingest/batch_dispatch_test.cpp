// Splitting a committed batch into the work of each shard, driven directly.
#include <map>

#include <gtest/gtest.h>

#include "actors/ingest/batch_dispatch.hpp"
#include "actors/models/twin_name.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;

namespace {

constexpr uint32_t shards = 64;

device_entry entry(std::string device, std::string patient) {
  device_entry e;
  e.device = std::move(device);
  e.patient = std::move(patient);
  return e;
}

std::map<uint32_t, shard_work> split(batch_splitter& s, const committed_batch_ptr& b) {
  std::map<uint32_t, shard_work> out;
  s.split(b, [&](uint32_t shard, shard_work&& w) {
    EXPECT_EQ(out.count(shard), 0u) << "shard " << shard << " twice";
    out[shard] = std::move(w);
  });
  return out;
}

}  // namespace

TEST(batch_splitter, each_entry_goes_to_its_devices_shard_and_its_patients_shard) {
  auto b = std::make_shared<committed_batch>();
  b->entries = {entry("tenants/h1/devices/d1", "tenants/h1/patients/p1"),
                entry("tenants/h1/devices/d2", ""),                        // unassigned
                entry("nurse-1", "tenants/h1/patients/p1"),                // a clinician's input
                entry("tenants/h1/devices/d3", "tenants/h1/patients/p3")};
  b->entries[2].clinician = true;
  b->entries[3].patient_only = true;  // a patient part: the device is elsewhere
  batch_splitter s{shards, {}};
  auto works = split(s, b);
  auto shard = [](const std::string& n) { return models::shard_of(n, shards); };
  std::map<uint32_t, std::vector<uint32_t>> devices, patients;
  for (auto& [sh, w] : works) {
    EXPECT_EQ(w.batch, b);
    devices[sh] = w.device_entries;
    patients[sh] = w.patient_entries;
  }
  auto has = [](const std::vector<uint32_t>& v, uint32_t i) { return std::find(v.begin(), v.end(), i) != v.end(); };
  EXPECT_TRUE(has(devices[shard("tenants/h1/devices/d1")], 0));
  EXPECT_TRUE(has(patients[shard("tenants/h1/patients/p1")], 0));
  EXPECT_TRUE(has(devices[shard("tenants/h1/devices/d2")], 1));
  EXPECT_TRUE(has(patients[shard("tenants/h1/patients/p1")], 2));  // clinician: the patient only
  EXPECT_FALSE(has(devices[shard("nurse-1")], 2));
  EXPECT_TRUE(has(patients[shard("tenants/h1/patients/p3")], 3));  // part: the patient only
  EXPECT_FALSE(has(devices[shard("tenants/h1/devices/d3")], 3));
  // The splitter is reused: a second batch starts clean.
  auto again = split(s, b);
  EXPECT_EQ(again.size(), works.size());
}

TEST(batch_splitter, shards_this_node_does_not_own_get_nothing) {
  auto b = std::make_shared<committed_batch>();
  b->entries = {entry("tenants/h1/devices/d1", "tenants/h1/patients/p1")};
  auto device_shard = models::shard_of("tenants/h1/devices/d1", shards);
  auto patient_shard = models::shard_of("tenants/h1/patients/p1", shards);
  batch_splitter s{shards, [&](uint32_t sh) { return sh == device_shard; }};
  auto works = split(s, b);
  ASSERT_EQ(works.count(device_shard), 1u);
  EXPECT_EQ(works[device_shard].device_entries, std::vector<uint32_t>{0});
  if (patient_shard != device_shard) {
    EXPECT_EQ(works.count(patient_shard), 0u);
  }
}
