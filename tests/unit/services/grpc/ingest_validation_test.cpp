#include "services/grpc/ingest_validation.hpp"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

using namespace healthtwin;
using namespace healthtwin::services;
namespace v1 = healthtwin::v1;
using actors::rejection_reason;

namespace {

constexpr int64_t now = 1'700'000'000'000;

v1::IngestRequest one(const std::string& device, uint64_t seq, int64_t t, int metric, double value) {
  v1::IngestRequest r;
  auto* d = r.add_devices();
  d->set_device(device);
  d->add_sequence(seq);
  d->add_time_ms(t);
  d->add_metric(static_cast<v1::Metric>(metric));
  d->add_value(value);
  return r;
}

const std::string dev = "tenants/h/devices/d";

rejection_reason reason_of(const v1::IngestRequest& r) {
  auto v = validate_ingest(r, now, {});
  EXPECT_TRUE(v.violations.empty());
  EXPECT_EQ(v.rejections.size(), 1u);
  return v.rejections.empty() ? rejection_reason{} : v.rejections[0].reason;
}

}  // namespace

TEST(ingest_validation, accepts_a_plausible_reading) {
  auto v = validate_ingest(one(dev, 1, now, 1, 72), now, {});
  EXPECT_TRUE(v.violations.empty());
  EXPECT_TRUE(v.rejections.empty());
  ASSERT_EQ(v.groups.size(), 1u);
  EXPECT_EQ(v.readings, 1u);
  EXPECT_EQ(v.groups[0].readings[0].metric, models::metric::heart_rate);
}

TEST(ingest_validation, refuses_empty_and_oversized_requests_as_a_whole) {
  v1::IngestRequest empty;
  auto v = validate_ingest(empty, now, {});
  ASSERT_EQ(v.violations.size(), 1u);
  EXPECT_EQ(v.violations[0].first, "devices");

  v1::IngestRequest no_readings;
  no_readings.add_devices()->set_device(dev);
  EXPECT_EQ(validate_ingest(no_readings, now, {}).violations.at(0).second, "carries no readings");

  v1::IngestRequest big;
  auto* d = big.add_devices();
  d->set_device(dev);
  for (int i = 0; i < 10'001; ++i) {
    d->add_sequence(static_cast<uint64_t>(i + 1));
    d->add_time_ms(now);
    d->add_metric(v1::METRIC_HEART_RATE);
    d->add_value(70);
  }
  v = validate_ingest(big, now, {});
  ASSERT_EQ(v.violations.size(), 1u);
  EXPECT_NE(v.violations[0].second.find("10001 readings exceed the limit of 10000"), std::string::npos);
  EXPECT_TRUE(v.groups.empty());

  ingest_limits tiny;
  tiny.max_bytes = 10;
  v = validate_ingest(one(dev, 1, now, 1, 72), now, tiny);
  ASSERT_FALSE(v.violations.empty());
  EXPECT_EQ(v.violations[0].first, "request");
}

TEST(ingest_validation, names_arrays_of_different_lengths) {
  auto r = one(dev, 1, now, 1, 72);
  r.mutable_devices(0)->add_value(73);
  r.mutable_devices(0)->add_time_ms(now);
  r.mutable_devices(0)->add_time_ms(now);
  auto v = validate_ingest(r, now, {});
  ASSERT_EQ(v.violations.size(), 2u);
  EXPECT_EQ(v.violations[0].first, "devices[0].time_ms");
  EXPECT_EQ(v.violations[0].second, "has 3 entries but sequence has 1");
  EXPECT_EQ(v.violations[1].first, "devices[0].value");
}

TEST(ingest_validation, rejects_bad_readings_one_by_one_naming_the_field) {
  EXPECT_EQ(reason_of(one("tenants/h/patients/p", 1, now, 1, 72)), rejection_reason::invalid_name);
  EXPECT_EQ(reason_of(one("devices/d", 1, now, 1, 72)), rejection_reason::invalid_name);
  EXPECT_EQ(reason_of(one(dev, 0, now, 1, 72)), rejection_reason::invalid_sequence);
  EXPECT_EQ(reason_of(one(dev, 1, now, 0, 72)), rejection_reason::invalid_metric);
  EXPECT_EQ(reason_of(one(dev, 1, now, 99, 72)), rejection_reason::invalid_metric);
  EXPECT_EQ(reason_of(one(dev, 1, now, -5, 72)), rejection_reason::invalid_metric);
  EXPECT_EQ(reason_of(one(dev, 1, now, 1, std::nan(""))), rejection_reason::not_finite);
  EXPECT_EQ(reason_of(one(dev, 1, now, 1, std::numeric_limits<double>::infinity())),
            rejection_reason::not_finite);
  EXPECT_EQ(reason_of(one(dev, 1, now, 1, -std::numeric_limits<double>::infinity())),
            rejection_reason::not_finite);
  EXPECT_EQ(reason_of(one(dev, 1, now, 1, 351)), rejection_reason::out_of_range);
  EXPECT_EQ(reason_of(one(dev, 1, now, 2, 100.5)), rejection_reason::out_of_range);
  EXPECT_EQ(reason_of(one(dev, 1, now, 4, 19.9)), rejection_reason::out_of_range);
  EXPECT_EQ(reason_of(one(dev, 1, now, 11, 2.5)), rejection_reason::out_of_range);  // ACVPU
  EXPECT_EQ(reason_of(one(dev, 1, now + 5 * 60'000 + 1, 1, 72)), rejection_reason::future_timestamp);
  EXPECT_EQ(reason_of(one(dev, 1, 946'684'799'999, 1, 72)), rejection_reason::invalid_timestamp);
  // Exactly at the limits is fine.
  EXPECT_TRUE(validate_ingest(one(dev, 1, now + 5 * 60'000, 1, 350), now, {}).rejections.empty());
}

TEST(ingest_validation, keeps_good_readings_of_a_mixed_batch_with_their_indices) {
  v1::IngestRequest r;
  auto* bad_dev = r.add_devices();
  bad_dev->set_device("nope");
  bad_dev->add_sequence(1);
  bad_dev->add_time_ms(now);
  bad_dev->add_metric(v1::METRIC_HEART_RATE);
  bad_dev->add_value(70);
  auto* d = r.add_devices();
  d->set_device(dev);
  for (double value : {70.0, std::nan(""), 71.0}) {
    d->add_sequence(static_cast<uint64_t>(d->sequence_size() + 1));
    d->add_time_ms(now);
    d->add_metric(v1::METRIC_HEART_RATE);
    d->add_value(value);
  }
  auto v = validate_ingest(r, now, {});
  ASSERT_EQ(v.rejections.size(), 2u);
  EXPECT_EQ(v.rejections[0].index, 0u);
  EXPECT_EQ(v.rejections[0].field, "devices[0].device");
  EXPECT_EQ(v.rejections[1].index, 2u);
  EXPECT_EQ(v.rejections[1].field, "devices[1].value[1]");
  ASSERT_EQ(v.groups.size(), 1u);
  EXPECT_EQ(v.groups[0].group, 1u);
  EXPECT_EQ(v.groups[0].first_index, 1u);
  ASSERT_EQ(v.groups[0].readings.size(), 2u);
  EXPECT_EQ(v.groups[0].readings[0].index, 1u);
  EXPECT_EQ(v.groups[0].readings[1].index, 3u);
  EXPECT_EQ(v.readings, 2u);
}
