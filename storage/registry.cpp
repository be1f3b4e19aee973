#include "storage/registry.hpp"

#include "healthtwin/internal/records.pb.h"
#include "storage/key_codec.hpp"
#include "storage/twin_table.hpp"

namespace healthtwin::storage {

using models::twin_kind;

caf::expected<device_record> decode_device(std::string_view bytes) {
  internal::DeviceRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return caf::make_error(errc::invalid_record, std::string{"device record does not parse"});
  auto type = models::device_type_from_number(r.type());
  if (!type)
    return caf::make_error(errc::invalid_record, std::string{"device record has an unknown type"});
  device_record d;
  d.name = r.name();
  d.type = *type;
  d.patient = r.patient();
  d.create_time_ms = r.create_time_ms();
  d.decommission_time_ms = r.decommission_time_ms();
  for (auto [from, to] : {std::pair{&r.desired(), &d.desired}, std::pair{&r.reported(), &d.reported}}) {
    to->settings.insert(from->settings().begin(), from->settings().end());
    to->firmware = from->firmware();
    to->version = from->version();
    to->update_time_ms = from->update_time_ms();
  }
  return d;
}

namespace {

caf::expected<patient_record> parse_patient(std::string_view bytes) {
  internal::PatientRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return caf::make_error(errc::invalid_record, std::string{"patient record does not parse"});
  patient_record p;
  p.name = r.name();
  p.ward = r.ward();
  p.bed = r.bed();
  p.spo2_scale2 = r.spo2_scale2();
  p.devices.assign(r.devices().begin(), r.devices().end());
  p.create_time_ms = r.create_time_ms();
  p.home_region = r.home_region();
  p.version = r.version();
  return p;
}

}  // namespace

caf::expected<std::optional<patient_record>> registry::get_patient(std::string_view name) {
  twin_table t{store_, column::registry};
  auto bytes = t.get(twin_kind::patient, name);
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<patient_record>{};
  auto p = parse_patient(**bytes);
  if (!p)
    return p.error();
  return std::optional<patient_record>{std::move(*p)};
}

caf::error registry::scan_kind(twin_kind kind, const std::function<bool(uint32_t shard)>& include,
                               const std::function<caf::error(std::string_view bytes)>& fn) {
  for (uint32_t shard = 0; shard < store_.shards(); ++shard) {
    if (include && !include(shard))
      continue;
    auto begin = key_codec::twin_key(shard, kind, "");
    auto end = begin;
    end.back() = static_cast<char>(end.back() + 1);
    caf::error bad;
    auto err = store_.scan(column::registry, begin, end, [&](std::string_view, std::string_view v) {
      bad = fn(v);
      return !bad;
    });
    if (err || bad)
      return err ? err : bad;
  }
  return caf::none;
}

caf::error registry::for_each_patient(const std::function<void(const patient_record&)>& fn,
                                      const std::function<bool(uint32_t shard)>& include) {
  return scan_kind(twin_kind::patient, include, [&](std::string_view v) -> caf::error {
    auto p = parse_patient(v);
    if (!p)
      return p.error();
    fn(*p);
    return caf::none;
  });
}

caf::error registry::for_each_device(const std::function<void(const device_record&)>& fn) {
  return scan_kind(twin_kind::device, {}, [&](std::string_view v) -> caf::error {
    auto d = decode_device(v);
    if (!d)
      return d.error();
    fn(*d);
    return caf::none;
  });
}

caf::expected<std::optional<device_record>> registry::get_device(std::string_view name) {
  twin_table t{store_, column::registry};
  auto bytes = t.get(twin_kind::device, name);
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<device_record>{};
  auto d = decode_device(**bytes);
  if (!d)
    return d.error();
  return std::optional<device_record>{std::move(*d)};
}

void registry::put(write_batch& batch, const patient_record& p) {
  internal::PatientRecord r;
  r.set_name(p.name);
  r.set_ward(p.ward);
  r.set_bed(p.bed);
  r.set_spo2_scale2(p.spo2_scale2);
  for (auto& d : p.devices)
    r.add_devices(d);
  r.set_create_time_ms(p.create_time_ms);
  r.set_home_region(p.home_region);
  r.set_version(p.version);
  twin_table{store_, column::registry}.put(batch, twin_kind::patient, p.name, r.SerializeAsString());
}

void registry::put(write_batch& batch, const device_record& d) {
  twin_table{store_, column::registry}.put(batch, twin_kind::device, d.name, encode_device(d));
}

std::string encode_device(const device_record& d) {
  internal::DeviceRecord r;
  r.set_name(d.name);
  r.set_type(static_cast<uint32_t>(d.type));
  r.set_patient(d.patient);
  r.set_create_time_ms(d.create_time_ms);
  r.set_decommission_time_ms(d.decommission_time_ms);
  for (auto [from, to] : {std::pair{&d.desired, r.mutable_desired()}, std::pair{&d.reported, r.mutable_reported()}}) {
    to->mutable_settings()->insert(from->settings.begin(), from->settings.end());
    to->set_firmware(from->firmware);
    to->set_version(from->version);
    to->set_update_time_ms(from->update_time_ms);
  }
  return r.SerializeAsString();
}

void registry::erase_patient(write_batch& batch, std::string_view name) {
  twin_table t{store_, column::registry};
  batch.erase(column::registry, t.key(twin_kind::patient, name));
}

}  // namespace healthtwin::storage
