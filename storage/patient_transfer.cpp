#include "storage/patient_transfer.hpp"

#include "actors/models/device_health.hpp"
#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/series_codec.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

using kind = patient_entry::kind;

// [prefix, prefix with its last byte (the 0x00 after the name) + 1).
std::string range_end(std::string prefix) {
  prefix.back() = '\x01';
  return prefix;
}

caf::error bad(size_t i, kind k, const std::string& why) {
  return caf::make_error(errc::invalid_record, std::string{"patient record "} + std::to_string(i) + " (" +
                                                   kind_name(k) + "): " + why);
}

// An alert id or silence metric: what follows the name in a key.
bool plain_suffix(const std::string& s, bool may_be_empty) {
  if (s.size() > 128 || (!may_be_empty && s.empty()))
    return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == '/' || c >= 0x7f)
      return false;
  return true;
}

}  // namespace

const char* kind_name(patient_entry::kind k) {
  switch (k) {
    case kind::snapshot: return "snapshot";
    case kind::series: return "series chunk";
    case kind::alert: return "alert";
    case kind::active: return "active alert";
    case kind::silence: return "silence";
  }
  return "unknown";
}

caf::expected<std::vector<patient_entry>> export_patient(store& s, std::string_view patient) {
  std::vector<patient_entry> out;
  auto shard = models::shard_of(patient, s.shards());
  auto snapshot = s.get_unsealed(column::twins, key_codec::twin_key(shard, models::twin_kind::patient, patient));
  if (!snapshot)
    return snapshot.error();
  if (*snapshot)
    out.push_back({kind::snapshot, {}, std::move(**snapshot)});
  caf::error failure;
  auto scan = [&](column c, const std::string& prefix, kind k, bool sealed) {
    if (failure)
      return;
    failure = s.scan(c, prefix, range_end(prefix), [&](std::string_view key, std::string_view value) {
      patient_entry e{k, std::string{key.substr(prefix.size())}, {}};
      if (sealed) {
        auto plain = s.unseal(value);
        if (!plain) {
          failure = plain.error();
          return false;
        }
        e.value = std::move(*plain);
      } else {
        e.value = std::string{value};
      }
      out.push_back(std::move(e));
      return true;
    });
  };
  scan(column::series, key_codec::series_patient_prefix(shard, patient), kind::series, true);
  scan(column::alerts, key_codec::alert_key('a', shard, patient, {}), kind::alert, true);
  scan(column::alerts, key_codec::alert_key('x', shard, patient, {}), kind::active, false);
  scan(column::alerts, key_codec::alert_key('s', shard, patient, {}), kind::silence, false);
  if (failure)
    return failure;
  return out;
}

caf::error import_patient(store& s, write_batch& batch, std::string_view patient,
                          const std::vector<patient_entry>& entries, uint64_t log_position) {
  auto shard = models::shard_of(patient, s.shards());
  auto alert_prefix = std::string{patient} + "/alerts/";
  for (size_t i = 0; i < entries.size(); ++i) {
    auto& e = entries[i];
    std::string key, value;
    bool seal = true;
    switch (e.what) {
      case kind::snapshot: {
        internal::PatientSnapshot p;
        if (!e.key.empty() || !p.ParseFromString(e.value))
          return bad(i, e.what, "it does not parse");
        p.set_applied_lsn(log_position);
        p.set_device_health(models::device_health{}.encode());  // its devices stayed behind
        key = key_codec::twin_key(shard, models::twin_kind::patient, patient);
        value = p.SerializeAsString();
        break;
      }
      case kind::series: {
        chunk_header h;
        if (e.key.size() != 5 || !read_chunk_header(e.value, h))
          return bad(i, e.what, "it is not a series chunk");
        key = key_codec::series_patient_prefix(shard, patient) + e.key;
        value = e.value;
        break;
      }
      case kind::alert: {
        internal::AlertRecord a;
        if (!plain_suffix(e.key, false) || !a.ParseFromString(e.value))
          return bad(i, e.what, "it does not parse");
        if (a.patient() != patient || a.name() != alert_prefix + e.key)
          return bad(i, e.what, "it is not an alert of this patient");
        key = key_codec::alert_key('a', shard, patient, e.key);
        value = e.value;
        break;
      }
      case kind::active:
        if (!plain_suffix(e.key, false) || !e.value.empty())
          return bad(i, e.what, "it is not an alert id");
        key = key_codec::alert_key('x', shard, patient, e.key);
        seal = false;
        break;
      case kind::silence: {
        internal::AlertSilenceRecord x;
        if (!plain_suffix(e.key, true) || !x.ParseFromString(e.value))
          return bad(i, e.what, "it does not parse");
        if (x.patient() != patient)
          return bad(i, e.what, "it is not a silence of this patient");
        key = key_codec::alert_key('s', shard, patient, e.key);
        value = e.value;
        seal = false;
        break;
      }
      default:
        return bad(i, e.what, "unknown kind");
    }
    if (seal) {
      auto sealed = s.seal(patient, value);
      if (!sealed)
        return sealed.error();
      value = std::move(*sealed);
    }
    batch.put(e.what == kind::snapshot ? column::twins
              : e.what == kind::series ? column::series
                                       : column::alerts,
              key, value);
  }
  return caf::none;
}

}  // namespace healthtwin::storage
