#pragma once
// Private to services/grpc: our structs <-> healthtwin.v1 messages.

#include <cstdint>
#include <vector>

#include <google/protobuf/duration.pb.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/twin/twin.hpp"
#include "services/grpc/status_mapping.hpp"
#include "healthtwin/v1/alert.pb.h"
#include "healthtwin/v1/registry.pb.h"
#include "healthtwin/v1/twin.pb.h"
#include "storage/registry.hpp"

namespace healthtwin::services {

void set_timestamp(google::protobuf::Timestamp* ts, int64_t unix_ms);
int64_t to_ms(const google::protobuf::Timestamp& ts);
int64_t to_ms(const google::protobuf::Duration& d);
void set_duration(google::protobuf::Duration* d, int64_t ms);

void to_api(const storage::patient_record& in, healthtwin::v1::Patient* out);
void to_api(const storage::device_record& in, healthtwin::v1::Device* out);
/// The shadow of a device: desired, reported, and their difference (desired
/// settings not reported with the same value; the firmware if it differs).
void shadow_to_api(const storage::device_record& in, healthtwin::v1::DeviceConfig* desired,
                   healthtwin::v1::DeviceConfig* reported, healthtwin::v1::DeviceConfig* delta);
/// A DeviceConfig from a request, or the violations naming `field`'s parts.
storage::device_config from_api(const healthtwin::v1::DeviceConfig& in, const std::string& field,
                                std::vector<field_violation>& bad);
void to_api(const actors::alert_record& in, healthtwin::v1::Alert* out);
void to_api(const actors::alert_event& in, healthtwin::v1::AlertEvent* out);
void to_api(const models::news2_result& in, healthtwin::v1::News2* out);
void to_api(const actors::patient_view& in, const std::vector<actors::alert_record>& alerts,
            healthtwin::v1::PatientTwin* out);
/// `online` is decided by the caller from the node clock.
void to_api(const actors::device_view& in, const storage::device_record& record, bool online,
            healthtwin::v1::DeviceTwin* out);

}  // namespace healthtwin::services
