#include "actors/ingest/log_codec.hpp"

#include <memory>

#include <google/protobuf/arena.h>

#include "actors/twin/patient_settings_record.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"

namespace healthtwin::actors {

namespace {

caf::error corrupt(uint64_t position, const std::string& what) {
  return caf::make_error(storage::errc::corruption,
                         "ingest log record at position " + std::to_string(position) + " " + what);
}

}  // namespace

std::string encode_log_record(const committed_batch& b) {
  // The record's parts (a message, two names and four arrays per device)
  // come from an arena: a few blocks per batch instead of an allocation
  // and a free for each.
  google::protobuf::ArenaOptions options;
  options.start_block_size = 64 << 10;
  options.max_block_size = 1 << 20;
  google::protobuf::Arena arena{options};
  auto& rec = *google::protobuf::Arena::CreateMessage<internal::LogRecord>(&arena);
  rec.set_receive_time_ms(b.receive_time_ms);
  for (auto& e : b.entries) {
    auto* d = rec.add_devices();
    d->set_device(e.device);
    d->set_patient(e.patient);
    d->set_clinician(e.clinician);
    d->set_patient_only(e.patient_only);
    d->set_sequence_reset(e.sequence_reset);
    if (e.settings)
      to_record(*e.settings, *d->mutable_settings());
    auto n = static_cast<int>(e.readings.size());
    d->mutable_sequence()->Reserve(n);
    d->mutable_time_ms()->Reserve(n);
    d->mutable_metric()->Reserve(n);
    d->mutable_value()->Reserve(n);
    bool qualified = false;
    for (auto& r : e.readings) {
      d->add_sequence(r.sequence);
      d->add_time_ms(r.time_ms);
      d->add_metric(static_cast<uint32_t>(r.metric));
      d->add_value(r.value);
      qualified = qualified || r.quality != models::reading_quality::unspecified;
    }
    if (qualified)  // else left out: the common case, as records before it
      for (auto& r : e.readings)
        d->add_quality(static_cast<uint32_t>(r.quality));
  }
  return rec.SerializeAsString();
}

caf::error decode_log_record(uint64_t pos, std::string_view bytes, internal::LogRecord& rec, committed_batch& out) {
  if (!rec.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return corrupt(pos, "does not parse");
  out.position = pos;
  out.receive_time_ms = rec.receive_time_ms();
  out.entries.clear();
  out.entries.reserve(static_cast<size_t>(rec.devices_size()));
  for (auto& d : rec.devices()) {
    device_entry e;
    e.device = d.device();
    e.patient = d.patient();
    e.patient_only = d.patient_only();
    e.sequence_reset = d.sequence_reset();
    auto n = d.sequence_size();
    if (d.clinician()) {
      e.clinician = true;
      if (d.has_settings()) {
        auto settings = std::make_shared<models::patient_settings>();
        if (auto bad = from_record(d.settings(), *settings))
          return corrupt(pos, "has invalid patient settings (" + *bad + ")");
        e.settings = std::move(settings);
      }
    }
    if (d.time_ms_size() != n || d.metric_size() != n || d.value_size() != n ||
        (d.quality_size() != 0 && d.quality_size() != n))
      return corrupt(pos, "has arrays of different lengths");
    e.readings.reserve(static_cast<size_t>(n));
    for (int k = 0; k < n; ++k) {
      auto m = models::metric_from_number(d.metric(k));
      if (!m)
        continue;
      auto q = d.quality_size() == 0 || d.quality(k) >= models::reading_quality_count
                   ? models::reading_quality::unspecified
                   : static_cast<models::reading_quality>(d.quality(k));
      e.readings.push_back(reading{d.sequence(k), d.time_ms(k), d.value(k), *m, q});
    }
    out.entries.push_back(std::move(e));
  }
  return caf::none;
}

}  // namespace healthtwin::actors
