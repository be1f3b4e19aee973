// The persisted form of alerts, their events and silences (records.proto).
#include "actors/alerts/alert_codec.hpp"

#include "healthtwin/internal/records.pb.h"

namespace healthtwin::actors {

namespace {

void to_proto(const alert_record& a, internal::AlertRecord& r) {
  r.set_name(a.name);
  r.set_patient(a.patient);
  r.set_ward(a.ward);
  r.set_kind(static_cast<uint32_t>(a.kind));
  r.set_metric(static_cast<uint32_t>(a.subject));
  r.set_priority(static_cast<uint32_t>(a.level));
  r.set_state(static_cast<uint32_t>(a.state));
  r.set_value(a.value);
  r.set_message(a.message);
  r.set_raise_time_ms(a.raise_time_ms);
  r.set_acknowledged_by(a.acknowledged_by);
  r.set_acknowledge_note(a.acknowledge_note);
  r.set_acknowledge_time_ms(a.acknowledge_time_ms);
  r.set_resolve_time_ms(a.resolve_time_ms);
  r.set_device(a.device);
  r.set_predicted_time_ms(a.predicted_time_ms);
  r.set_escalation_level(a.escalation_level);
  r.set_notify_time_ms(a.notify_time_ms);
  r.set_silenced_until_ms(a.silenced_until_ms);
  r.set_resolved_by(a.resolved_by);
  r.set_resolve_note(a.resolve_note);
}

void from_proto(const internal::AlertRecord& r, alert_record& a) {
  a.name = r.name();
  a.patient = r.patient();
  a.ward = r.ward();
  a.kind = static_cast<models::alert_kind>(r.kind());
  a.subject = static_cast<models::metric>(r.metric());
  a.level = static_cast<models::priority>(r.priority());
  a.state = static_cast<alert_state>(r.state());
  a.value = r.value();
  a.message = r.message();
  a.raise_time_ms = r.raise_time_ms();
  a.acknowledged_by = r.acknowledged_by();
  a.acknowledge_note = r.acknowledge_note();
  a.acknowledge_time_ms = r.acknowledge_time_ms();
  a.resolve_time_ms = r.resolve_time_ms();
  a.device = r.device();
  a.predicted_time_ms = r.predicted_time_ms();
  a.escalation_level = r.escalation_level();
  a.notify_time_ms = r.notify_time_ms();
  a.silenced_until_ms = r.silenced_until_ms();
  a.resolved_by = r.resolved_by();
  a.resolve_note = r.resolve_note();
}

}  // namespace

std::string serialize(const alert_silence& s) {
  internal::AlertSilenceRecord r;
  r.set_patient(s.patient);
  r.set_metric(static_cast<uint32_t>(s.subject));
  r.set_until_ms(s.until_ms);
  r.set_silenced_by(s.silenced_by);
  r.set_reason(s.reason);
  return r.SerializeAsString();
}

bool parse(std::string_view bytes, alert_silence& out) {
  internal::AlertSilenceRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      r.metric() > models::metric_count)
    return false;
  out.patient = r.patient();
  out.subject = static_cast<models::metric>(r.metric());
  out.until_ms = r.until_ms();
  out.silenced_by = r.silenced_by();
  out.reason = r.reason();
  return true;
}

std::string_view silence_key(models::metric m) {
  return m == models::metric{} ? std::string_view{} : models::to_string(m);
}

std::string serialize(const alert_record& a) {
  internal::AlertRecord r;
  to_proto(a, r);
  return r.SerializeAsString();
}

bool parse(std::string_view bytes, alert_record& out) {
  internal::AlertRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return false;
  from_proto(r, out);
  return true;
}

std::string serialize(const alert_event& e) {
  internal::AlertEventRecord r;
  r.set_sequence(e.sequence);
  r.set_type(static_cast<uint32_t>(e.type));
  to_proto(e.alert, *r.mutable_alert());
  r.set_event_time_ms(e.event_time_ms);
  return r.SerializeAsString();
}

bool parse(std::string_view bytes, alert_event& out) {
  internal::AlertEventRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return false;
  out.sequence = r.sequence();
  out.type = static_cast<alert_event_type>(r.type());
  from_proto(r.alert(), out.alert);
  out.event_time_ms = r.event_time_ms();
  return true;
}

}  // namespace healthtwin::actors
