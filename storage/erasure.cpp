#include "storage/erasure.hpp"

#include <string>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

// [prefix + 0x00, prefix + 0x01): every key of one patient under `prefix`
// (which ends in the 0x00 after the patient's name).
struct key_range {
  std::string begin;
  std::string end;
};

key_range patient_range(std::string prefix_with_nul) {
  key_range r{prefix_with_nul, std::move(prefix_with_nul)};
  r.end.back() = '\x01';
  return r;
}

// Every range keyed by the patient: snapshot, series, alert records,
// active index and silences.
std::vector<std::pair<column, key_range>> patient_ranges(store& s, std::string_view patient) {
  auto shard = models::shard_of(patient, s.shards());
  auto snapshot = key_codec::twin_key(shard, models::twin_kind::patient, patient);
  std::vector<std::pair<column, key_range>> out{
      {column::twins, {snapshot, snapshot + '\0'}},
      {column::series, patient_range(key_codec::series_patient_prefix(shard, patient))}};
  for (char kind : {'a', 'x', 's'})
    out.push_back({column::alerts, patient_range(key_codec::alert_key(kind, shard, patient, {}))});
  return out;
}

// The owner of an alert event: its patient, or its device.
std::string owner_of(const internal::AlertEventRecord& e) {
  return e.alert().patient().empty() ? e.alert().device() : e.alert().patient();
}

}  // namespace

caf::error erase_patient_records(store& s, std::string_view patient) {
  write_batch batch{s};
  for (auto& [c, r] : patient_ranges(s, patient))
    batch.erase_range(c, r.begin, r.end);
  return s.write(batch, true);
}

caf::expected<purge_report> purge_erased(store& s, std::string_view patient) {
  purge_report report;
  // Again, in case the alert hub never got to it (the node stopped first).
  if (auto e = erase_patient_records(s, patient))
    return e;
  write_batch batch{s};
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
  // The registry record shares the snapshot's key layout.
  auto record = key_codec::twin_key(models::shard_of(patient, s.shards()),
                                    models::twin_kind::patient, patient);
  auto ranges = patient_ranges(s, patient);
  ranges.push_back({column::registry, {record, record + '\0'}});
  ranges.push_back({column::alerts, {"e", "f"}});
  for (auto& [c, r] : ranges)
    if (auto e = s.compact_range(c, r.begin, r.end))
      return e;
  return report;
}

}  // namespace healthtwin::storage
