// The ingest log's record format, driven directly: what is encoded decodes
// to the same batch, and damaged records are corruption naming the position.
#include <gtest/gtest.h>

#include "actors/ingest/log_codec.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"

using namespace healthtwin;
using namespace healthtwin::actors;
using models::metric;
using models::reading_quality;

namespace {

committed_batch sample_batch() {
  committed_batch b;
  b.position = 7;
  b.receive_time_ms = 1'800'000'000'000;
  device_entry monitor;
  monitor.device = "tenants/h1/devices/mon-1";
  monitor.patient = "tenants/h1/patients/p1";
  monitor.readings = {{1, 1'000, 72, metric::heart_rate, reading_quality::unspecified},
                      {2, 1'000, 0, metric::spo2, reading_quality::no_signal}};
  device_entry oximeter;  // no quality at all: written without the array
  oximeter.device = "tenants/h1/devices/oxi-1";
  oximeter.readings = {{9, 2'000, 97, metric::spo2, reading_quality::unspecified}};
  device_entry nurse;
  nurse.device = "nurse-1";
  nurse.patient = "tenants/h1/patients/p1";
  nurse.clinician = true;
  auto settings = std::make_shared<models::patient_settings>();
  settings->spo2_scale2 = true;
  nurse.settings = settings;
  nurse.readings = {{0, 3'000, 1, metric::consciousness, reading_quality::unspecified}};
  device_entry part;
  part.device = "tenants/h1/devices/mon-2";
  part.patient = "tenants/h1/patients/p2";
  part.patient_only = true;
  device_entry reset;
  reset.device = "tenants/h1/devices/mon-3";
  reset.sequence_reset = true;
  b.entries = {monitor, oximeter, nurse, part, reset};
  return b;
}

}  // namespace

TEST(log_codec, what_is_encoded_decodes_to_the_same_batch) {
  auto b = sample_batch();
  auto bytes = encode_log_record(b);
  internal::LogRecord scratch;
  committed_batch out;
  ASSERT_FALSE(decode_log_record(11, bytes, scratch, out));
  EXPECT_EQ(out.position, 11u);
  EXPECT_EQ(out.receive_time_ms, b.receive_time_ms);
  ASSERT_EQ(out.entries.size(), b.entries.size());
  for (size_t i = 0; i < b.entries.size(); ++i) {
    auto &x = b.entries[i], &y = out.entries[i];
    EXPECT_EQ(y.device, x.device);
    EXPECT_EQ(y.patient, x.patient);
    EXPECT_EQ(y.clinician, x.clinician);
    EXPECT_EQ(y.patient_only, x.patient_only);
    EXPECT_EQ(y.sequence_reset, x.sequence_reset);
    EXPECT_EQ(static_cast<bool>(y.settings), static_cast<bool>(x.settings));
    ASSERT_EQ(y.readings.size(), x.readings.size());
    for (size_t k = 0; k < x.readings.size(); ++k) {
      EXPECT_EQ(y.readings[k].sequence, x.readings[k].sequence);
      EXPECT_EQ(y.readings[k].time_ms, x.readings[k].time_ms);
      EXPECT_EQ(y.readings[k].metric, x.readings[k].metric);
      EXPECT_EQ(y.readings[k].value, x.readings[k].value);
      EXPECT_EQ(y.readings[k].quality, x.readings[k].quality);
    }
  }
  EXPECT_TRUE(out.entries[2].settings->spo2_scale2);
  // The quality array is left out where no reading of an entry has one.
  internal::LogRecord rec;
  ASSERT_TRUE(rec.ParseFromString(bytes));
  EXPECT_EQ(rec.devices(0).quality_size(), 2);
  EXPECT_EQ(rec.devices(1).quality_size(), 0);
}

TEST(log_codec, readings_of_metrics_this_build_does_not_know_are_skipped) {
  internal::LogRecord rec;
  auto* d = rec.add_devices();
  d->set_device("tenants/h1/devices/mon-1");
  for (uint32_t m : {1u, 200u, 2u}) {
    d->add_sequence(m);
    d->add_time_ms(1'000);
    d->add_metric(m);
    d->add_value(50);
  }
  committed_batch out;
  internal::LogRecord scratch;
  ASSERT_FALSE(decode_log_record(1, rec.SerializeAsString(), scratch, out));
  ASSERT_EQ(out.entries[0].readings.size(), 2u);
  EXPECT_EQ(out.entries[0].readings[1].metric, metric::spo2);
}

TEST(log_codec, damaged_records_are_corruption_naming_their_position) {
  internal::LogRecord scratch;
  committed_batch out;
  auto garbage = decode_log_record(42, std::string("\xff\xff\xff\xff", 4), scratch, out);
  EXPECT_EQ(garbage, storage::errc::corruption);
  EXPECT_NE(storage::describe(garbage).find("position 42"), std::string::npos) << storage::describe(garbage);

  internal::LogRecord rec;
  auto* d = rec.add_devices();
  d->set_device("tenants/h1/devices/mon-1");
  d->add_sequence(1);
  d->add_sequence(2);
  d->add_time_ms(1'000);  // one time for two readings
  d->add_metric(1);
  d->add_metric(1);
  d->add_value(60);
  d->add_value(61);
  auto uneven = decode_log_record(43, rec.SerializeAsString(), scratch, out);
  EXPECT_EQ(uneven, storage::errc::corruption);
  EXPECT_NE(storage::describe(uneven).find("arrays of different lengths"), std::string::npos);
}
