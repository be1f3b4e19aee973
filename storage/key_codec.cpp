#include "storage/key_codec.hpp"

namespace healthtwin::storage::key_codec {

void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void put_u32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8)
    out.push_back(static_cast<char>(v >> s));
}

void put_u64(std::string& out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8)
    out.push_back(static_cast<char>(v >> s));
}

uint64_t get_u64(std::string_view in) noexcept {
  if (in.size() < 8)
    return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

uint32_t get_u32(std::string_view in) noexcept {
  if (in.size() < 4)
    return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

std::string log_key(uint64_t position) {
  std::string k;
  put_u64(k, position);
  return k;
}

std::string twin_key(uint32_t shard, models::twin_kind kind, std::string_view name) {
  std::string k;
  k.reserve(3 + name.size());
  put_u16(k, static_cast<uint16_t>(shard));
  k.push_back(static_cast<char>(kind));
  k.append(name);
  return k;
}

std::string window_key(uint32_t shard, std::string_view device) {
  std::string k;
  k.reserve(3 + device.size());
  put_u16(k, static_cast<uint16_t>(shard));
  k.push_back('w');
  k.append(device);
  return k;
}

namespace {
constexpr std::string_view part_prefix{"part:"};
}  // namespace

std::string part_window_name(std::string_view patient, std::string_view device) {
  std::string name{part_prefix};
  name.append(patient).append("|").append(device);
  return name;
}

uint32_t window_shard(std::string_view name, uint32_t shards) {
  if (name.substr(0, part_prefix.size()) == part_prefix)
    return models::shard_of(name.substr(part_prefix.size(), name.find('|') - part_prefix.size()), shards);
  return models::shard_of(name, shards);
}

std::string series_patient_prefix(uint32_t shard, std::string_view patient) {
  std::string k;
  k.reserve(8 + patient.size());
  put_u16(k, static_cast<uint16_t>(shard));
  k.append(patient);
  k.push_back('\0');
  return k;
}

std::string series_prefix(uint32_t shard, std::string_view patient, uint8_t metric) {
  auto k = series_patient_prefix(shard, patient);
  k.push_back(static_cast<char>(metric));
  return k;
}

std::string series_key(uint32_t shard, std::string_view patient, uint8_t metric,
                       uint32_t chunk_no) {
  auto k = series_prefix(shard, patient, metric);
  put_u32(k, chunk_no);
  return k;
}

std::string alert_key(char kind, uint32_t shard, std::string_view patient,
                      std::string_view alert_id) {
  std::string k;
  k.push_back(kind);
  put_u16(k, static_cast<uint16_t>(shard));
  k.append(patient);
  k.push_back('\0');
  k.append(alert_id);
  return k;
}

std::string alert_event_key(uint64_t sequence) {
  std::string k{"e"};
  put_u64(k, sequence);
  return k;
}

}  // namespace healthtwin::storage::key_codec
