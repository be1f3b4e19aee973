#include "storage/erasure.hpp"

#include <string>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

// [prefix + 0x00, prefix + 0x01): every key of one patient under `prefix`.
struct key_range {
  std::string begin;
  std::string end;
};

key_range patient_range(std::string prefix_with_nul) {
  key_range r{prefix_with_nul, std::move(prefix_with_nul)};
  r.end.back() = '\x01';
  return r;
}

key_range series_range(uint32_t shard, std::string_view patient) {
  std::string k;
  key_codec::put_u16(k, static_cast<uint16_t>(shard));
  k.append(patient);
  k.push_back('\0');
  return patient_range(std::move(k));
}

key_range alert_range(char kind, uint32_t shard, std::string_view patient) {
  return patient_range(key_codec::alert_key(kind, shard, patient, {}));
}

// The owner of an alert event: its patient, or its device.
std::string owner_of(const internal::AlertEventRecord& e) {
  return e.alert().patient().empty() ? e.alert().device() : e.alert().patient();
}

}  // namespace

void erase_patient_records(write_batch& batch, store& s, std::string_view patient) {
  auto shard = models::shard_of(patient, s.shards());
  auto snapshot = key_codec::twin_key(shard, models::twin_kind::patient, patient);
  batch.erase(column::twins, snapshot);
  auto series = series_range(shard, patient);
  batch.erase_range(column::series, series.begin, series.end);
  for (char kind : {'a', 'x', 's'}) {
    auto r = alert_range(kind, shard, patient);
    batch.erase_range(column::alerts, r.begin, r.end);
  }
}

caf::expected<purge_report> purge_erased(store& s, std::string_view patient) {
  purge_report report;
  write_batch batch{s};
  // Again, in case the twin never got to it (the node stopped first).
  erase_patient_records(batch, s, patient);
  caf::error inner;
  auto err = s.scan(column::alerts, "e", "f", [&](std::string_view key, std::string_view stored) {
    auto plain = s.unseal(stored);
    bool erased = !plain && plain.error() == errc::erased;
    if (plain) {  // a plaintext directory: ask the owner
      internal::AlertEventRecord e;
      erased = e.ParseFromArray(plain->data(), static_cast<int>(plain->size())) &&
               s.patient_erased(owner_of(e));
    }
    if (erased) {
      batch.erase(column::alerts, key);
      ++report.alert_events;
    }
    if (batch.count() >= 10'000) {
      if ((inner = s.write(batch, false)))
        return false;
      batch.clear();
    }
    return true;
  });
  if (err || inner)
    return err ? err : inner;
  if (auto e = s.write(batch, true))
    return e;

  // Rewrite what held the patient: its ranges, the ingest log (readings
  // attributed to it), the keys (its wrapped key) and the alert events.
  if (auto e = s.flush_all_and_compact(column::log))
    return e;
  if (auto e = s.compact(column::keys))
    return e;
  auto shard = models::shard_of(patient, s.shards());
  // Snapshot and registry record share the key layout.
  auto record = key_codec::twin_key(shard, models::twin_kind::patient, patient);
  auto series = series_range(shard, patient);
  std::vector<std::pair<column, key_range>> ranges{
      {column::twins, {record, record + '\0'}},
      {column::registry, {record, record + '\0'}},
      {column::series, series},
      {column::alerts, {"e", "f"}}};
  for (char kind : {'a', 'x', 's'})
    ranges.push_back({column::alerts, alert_range(kind, shard, patient)});
  for (auto& [c, r] : ranges)
    if (auto e = s.compact_range(c, r.begin, r.end))
      return e;
  return report;
}

}  // namespace healthtwin::storage
