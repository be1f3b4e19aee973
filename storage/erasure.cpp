#include "storage/erasure.hpp"

#include <string>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/retention.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

// Owed purges in the meta column: "purge-owed/" + the patient's pseudonym.
constexpr std::string_view owed_prefix = "purge-owed/";
constexpr std::string_view owed_end = "purge-owed0";  // '/' + 1

std::string owed_key(store& s, std::string_view patient) {
  return std::string{owed_prefix} + s.pseudonym(patient);
}

}  // namespace

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

// Every range keyed by the patient: snapshot, the sequence windows of its
// patient parts (key_codec::part_window_name), series, alert records,
// active index and silences.
std::vector<std::pair<column, key_range>> patient_ranges(store& s, std::string_view patient) {
  auto shard = models::shard_of(patient, s.shards());
  auto snapshot = key_codec::twin_key(shard, models::twin_kind::patient, patient);
  auto parts = key_codec::window_key(shard, key_codec::part_window_name(patient, {}));
  auto parts_end = parts;
  parts_end.back() = '|' + 1;
  std::vector<std::pair<column, key_range>> out{
      {column::twins, {snapshot, snapshot + '\0'}},
      {column::twins, {parts, parts_end}},
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
  write_batch done{s};
  done.erase(column::meta, owed_key(s, patient));
  if (auto e = s.write(done, true))
    return e;
  return report;
}

void note_purge_owed(write_batch& batch, store& s, std::string_view patient) {
  batch.put(column::meta, owed_key(s, patient), {});
}

caf::expected<size_t> purges_owed(store& s) {
  size_t n = 0;
  auto err = s.scan(column::meta, owed_prefix, owed_end, [&](std::string_view, std::string_view) {
    ++n;
    return true;
  });
  if (err)
    return err;
  return n;
}

caf::expected<purge_report> purge_all_erased(store& s) {
  purge_report report;
  // Series, alerts and events of erased owners: the retention sweep's
  // leftover pass (nothing is old enough to expire at time 0).
  auto swept = enforce_retention(s, retention_settings{}, 0);
  if (!swept)
    return swept.error();
  report.alert_events = swept->alert_events;
  // Patient snapshots (sealed) whose key is destroyed.
  write_batch batch{s};
  auto err = s.scan(column::twins, {}, {}, [&](std::string_view key, std::string_view stored) {
    if (key.size() > 2 && key[2] == static_cast<char>(models::twin_kind::patient)) {
      auto plain = s.unseal(stored);
      if (!plain && plain.error() == errc::erased)
        batch.erase(column::twins, key);
    }
    return true;
  });
  if (err)
    return err;
  auto err2 = s.scan(column::meta, owed_prefix, owed_end, [&](std::string_view key, std::string_view) {
    batch.erase(column::meta, key);
    return true;
  });
  if (err2)
    return err2;
  if (auto e = s.write(batch, true))
    return e;
  for (auto c : {column::log, column::registry, column::twins, column::series, column::alerts,
                 column::keys, column::meta})
    if (auto e = c == column::log ? s.flush_all_and_compact(c) : s.compact(c))
      return e;
  return report;
}

}  // namespace healthtwin::storage
