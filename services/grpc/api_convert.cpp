#include "services/grpc/api_convert.hpp"

#include <algorithm>

namespace healthtwin::services {

namespace v1 = healthtwin::v1;

void set_timestamp(google::protobuf::Timestamp* ts, int64_t unix_ms) {
  auto secs = unix_ms / 1000;
  auto rem = unix_ms % 1000;
  if (rem < 0) {
    rem += 1000;
    --secs;
  }
  ts->set_seconds(secs);
  ts->set_nanos(static_cast<int32_t>(rem * 1'000'000));
}

int64_t to_ms(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000 + ts.nanos() / 1'000'000;
}

int64_t to_ms(const google::protobuf::Duration& d) {
  return d.seconds() * 1000 + d.nanos() / 1'000'000;
}

void set_duration(google::protobuf::Duration* d, int64_t ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1'000'000));
}

void to_api(const storage::patient_record& in, v1::Patient* out) {
  out->set_name(in.name);
  out->set_ward(in.ward);
  out->set_bed(in.bed);
  out->set_spo2_scale2(in.spo2_scale2);
  for (auto& d : in.devices)
    out->add_devices(d);
  set_timestamp(out->mutable_create_time(), in.create_time_ms);
  out->set_home_region(in.home_region);
  out->set_etag(std::to_string(in.version));
}

void to_api(const storage::device_record& in, v1::Device* out) {
  out->set_name(in.name);
  out->set_type(static_cast<v1::DeviceType>(in.type));
  out->set_patient(in.patient);
  set_timestamp(out->mutable_create_time(), in.create_time_ms);
  if (in.decommission_time_ms != 0)
    set_timestamp(out->mutable_decommission_time(), in.decommission_time_ms);
  shadow_to_api(in, out->mutable_desired(), out->mutable_reported(), out->mutable_delta());
}

void to_api(const actors::alert_record& in, v1::Alert* out) {
  out->set_name(in.name);
  out->set_patient(in.patient);
  out->set_ward(in.ward);
  out->set_kind(static_cast<v1::AlertKind>(in.kind));
  if (in.kind != models::alert_kind::news2)
    out->set_metric(static_cast<v1::Metric>(in.subject));
  out->set_device(in.device);
  out->set_predicted_time_ms(in.predicted_time_ms);
  out->set_escalation_level(in.escalation_level);
  if (in.silenced_until_ms != 0)
    set_timestamp(out->mutable_silenced_until(), in.silenced_until_ms);
  out->set_resolved_by(in.resolved_by);
  out->set_resolve_note(in.resolve_note);
  out->set_priority(static_cast<v1::Priority>(in.level));
  out->set_state(static_cast<v1::AlertState>(in.state));
  out->set_value(in.value);
  out->set_message(in.message);
  out->set_raise_time_ms(in.raise_time_ms);
  out->set_acknowledged_by(in.acknowledged_by);
  out->set_acknowledge_note(in.acknowledge_note);
  if (in.acknowledge_time_ms != 0)
    set_timestamp(out->mutable_acknowledge_time(), in.acknowledge_time_ms);
  out->set_resolve_time_ms(in.resolve_time_ms);
}

void to_api(const actors::alert_event& in, v1::AlertEvent* out) {
  out->set_resume_token(in.sequence);
  out->set_type(static_cast<v1::AlertEventType>(in.type));
  to_api(in.alert, out->mutable_alert());
  set_timestamp(out->mutable_event_time(), in.event_time_ms);
}

void to_api(const models::news2_result& in, v1::News2* out) {
  out->set_total(in.total);
  out->set_complete(in.complete);
  out->set_band(static_cast<v1::News2Band>(in.band));
  out->set_spo2_scale2(in.spo2_scale2);
  out->set_time_ms(in.time_ms);
  for (auto& p : in.parts) {
    auto* part = out->add_parts();
    part->set_parameter(static_cast<v1::News2Parameter>(p.parameter));
    part->set_score(p.score);
    part->set_value(p.value);
    part->set_time_ms(p.time_ms);
    part->set_missing(p.missing);
    part->set_stale(p.stale);
  }
}

void to_api(const actors::patient_view& in, const std::vector<actors::alert_record>& alerts,
            v1::PatientTwin* out) {
  out->set_name(in.name);
  out->set_ward(in.ward);
  out->set_bed(in.bed);
  for (auto& d : in.devices)
    out->add_devices(d);
  for (auto& v : in.vitals) {
    auto* vital = out->add_vitals();
    vital->set_metric(static_cast<v1::Metric>(v.metric));
    vital->set_value(v.value);
    vital->set_time_ms(v.time_ms);
    vital->set_source_device(v.source_device);
  }
  to_api(in.news2, out->mutable_news2());
  for (auto& a : alerts)
    to_api(a, out->add_active_alerts());
  out->set_readings_applied(in.readings_applied);
  for (auto& p : in.news2_history) {
    auto* point = out->add_news2_history();
    point->set_time_ms(p.time_ms);
    point->set_total(p.total);
    point->set_complete(p.complete);
  }
  if (in.news2_change_1h)
    out->set_news2_change_1h(*in.news2_change_1h);
}

namespace {
void config_to_api(const storage::device_config& in, v1::DeviceConfig* out) {
  out->mutable_settings()->insert(in.settings.begin(), in.settings.end());
  out->set_firmware(in.firmware);
  out->set_version(in.version);
  out->set_update_time_ms(in.update_time_ms);
}

bool printable(const std::string& s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
}
}  // namespace

void shadow_to_api(const storage::device_record& in, v1::DeviceConfig* desired,
                   v1::DeviceConfig* reported, v1::DeviceConfig* delta) {
  config_to_api(in.desired, desired);
  config_to_api(in.reported, reported);
  for (auto& [name, value] : in.desired.settings) {
    auto it = in.reported.settings.find(name);
    if (it == in.reported.settings.end() || it->second != value)
      (*delta->mutable_settings())[name] = value;
  }
  if (in.desired.firmware != in.reported.firmware)
    delta->set_firmware(in.desired.firmware);
  delta->set_version(in.desired.version);
}

storage::device_config from_api(const v1::DeviceConfig& in, const std::string& field,
                                std::vector<field_violation>& bad) {
  storage::device_config out;
  if (in.settings_size() > 64)
    bad.push_back({field + ".settings", "at most 64 settings"});
  for (auto& [name, value] : in.settings()) {
    bool name_ok = !name.empty() && name.size() <= 64 &&
                   std::all_of(name.begin(), name.end(), [](char c) {
                     return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
                   });
    if (!name_ok)
      bad.push_back({field + ".settings", "names must be 1-64 characters of [a-z0-9_.-]"});
    else if (value.size() > 256 || !printable(value))
      bad.push_back({field + ".settings[" + name + "]", "must be at most 256 characters without control characters"});
    out.settings.emplace(name, value);
  }
  if (in.firmware().size() > 64 || !printable(in.firmware()))
    bad.push_back({field + ".firmware", "must be at most 64 characters without control characters"});
  out.firmware = in.firmware();
  out.version = in.version();
  return out;
}

void to_api(const actors::device_view& in, const storage::device_record& record, bool online,
            v1::DeviceTwin* out) {
  out->set_name(record.name);
  out->set_type(static_cast<v1::DeviceType>(record.type));
  out->set_patient(record.patient);
  if (in.last_receive_time_ms != 0)
    set_timestamp(out->mutable_last_seen_time(), in.last_receive_time_ms);
  out->set_last_reading_time_ms(in.last_reading_time_ms);
  out->set_online(online);
  out->set_has_battery(in.has_battery);
  out->set_battery_percent(in.battery_percent);
  out->set_last_sequence(in.last_sequence);
  out->set_readings_accepted(in.readings_accepted);
  shadow_to_api(record, out->mutable_desired(), out->mutable_reported(), out->mutable_delta());
}

}  // namespace healthtwin::services
