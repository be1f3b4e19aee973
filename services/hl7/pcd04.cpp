#include "services/hl7/pcd04.hpp"

#include <ctime>

#include <fmt/format.h>

#include "actors/models/twin_name.hpp"
#include "services/hl7/hl7_message.hpp"

namespace healthtwin::hl7 {

namespace {

/// HL7 DTM with milliseconds, UTC: YYYYMMDDHHMMSS.sss+0000.
std::string dtm(int64_t ms) {
  if (ms <= 0)
    return {};
  std::time_t s = ms / 1000;
  std::tm tm{};
  gmtime_r(&s, &tm);
  return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}.{:03}+0000", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

struct measurement {
  const char* code;  // MDC code^name
  const char* unit;  // MDC unit code^name
};

/// The MDC identity of a metric in alarm (docs/hl7.md's table, in reverse).
const measurement* mdc_of(v1::Metric m) {
  static const measurement hr{"147842^MDC_ECG_HEART_RATE^MDC", "264864^MDC_DIM_BEAT_PER_MIN^MDC"},
      spo2{"150456^MDC_PULS_OXIM_SAT_O2^MDC", "262688^MDC_DIM_PERCENT^MDC"},
      rr{"151562^MDC_RESP_RATE^MDC", "264928^MDC_DIM_RESP_PER_MIN^MDC"},
      sys{"150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "266016^MDC_DIM_MMHG^MDC"},
      dia{"150022^MDC_PRESS_BLD_NONINV_DIA^MDC", "266016^MDC_DIM_MMHG^MDC"},
      map{"150023^MDC_PRESS_BLD_NONINV_MEAN^MDC", "266016^MDC_DIM_MMHG^MDC"},
      temp{"150364^MDC_TEMP_BODY^MDC", "268192^MDC_DIM_DEGC^MDC"};
  switch (m) {
    case v1::METRIC_HEART_RATE: return &hr;
    case v1::METRIC_SPO2: return &spo2;
    case v1::METRIC_RESPIRATION_RATE: return &rr;
    case v1::METRIC_SYSTOLIC_BP: return &sys;
    case v1::METRIC_DIASTOLIC_BP: return &dia;
    case v1::METRIC_MEAN_ARTERIAL_PRESSURE: return &map;
    case v1::METRIC_TEMPERATURE: return &temp;
    default: return nullptr;
  }
}

const char* priority_flag(v1::Priority p) {
  switch (p) {
    case v1::PRIORITY_HIGH: return "PH";
    case v1::PRIORITY_MEDIUM: return "PM";
    case v1::PRIORITY_LOW: return "PL";
    default: return "PN";
  }
}

bool technical(v1::AlertKind k) {
  return k >= v1::ALERT_KIND_DEVICE_OFFLINE;
}

const char* phase(v1::AlertEventType t) {
  switch (t) {
    case v1::ALERT_EVENT_TYPE_RAISED: return "start";
    case v1::ALERT_EVENT_TYPE_RESOLVED: return "end";
    default: return "continue";
  }
}

const char* inactivation(const v1::AlertEvent& e) {
  if (e.alert().has_silenced_until())
    return "audio-paused";
  if (e.alert().state() == v1::ALERT_STATE_ACKNOWLEDGED || e.alert().has_acknowledge_time())
    return "acknowledged";  // also once resolved after an acknowledgement
  return "enabled";
}

}  // namespace

std::string pcd04_control_id(uint64_t resume_token) {
  return fmt::format("HT{}", resume_token);
}

std::string report_alert(const v1::AlertEvent& e, const pcd04_identity& us, int64_t now_ms) {
  delimiters d;
  auto esc = [&](std::string_view s) { return escape(s, d); };
  auto& a = e.alert();
  auto kind_value = v1::AlertKind_descriptor()->FindValueByNumber(a.kind());
  std::string kind = kind_value ? std::string{kind_value->name()}.substr(sizeof("ALERT_KIND_") - 1) : "UNKNOWN";
  std::string out;
  out += fmt::format("MSH|^~\\&|HealthTwin|{}|{}|{}|{}||ORU^R40^ORU_R40|{}|{}|2.6|||AL|NE||UNICODE UTF-8|||"
                     "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4.4^ISO\r",
                     esc(us.facility), esc(us.receiver_app), esc(us.receiver_facility), dtm(now_ms),
                     pcd04_control_id(e.resume_token()), esc(us.processing_id));
  if (auto p = models::parse_twin_name(a.patient()); p && p->kind == models::twin_kind::patient)
    out += fmt::format("PID|||{}^^^{}^PI\r", esc(p->id), esc(p->tenant));
  out += fmt::format("PV1||I|{}\r", esc(a.ward()));
  auto id = a.name().substr(a.name().rfind('/') + 1);
  out += fmt::format("OBR|1|{}^HealthTwin||196616^MDC_EVT_ALARM^MDC|||{}\r", esc(id), dtm(a.raise_time_ms()));
  auto event_time = dtm(e.has_event_time() ? e.event_time().seconds() * 1000 + e.event_time().nanos() / 1'000'000
                                           : now_ms);
  auto device = a.device().empty() ? std::string{} : esc(a.device().substr(a.device().rfind('/') + 1));
  out += fmt::format("OBX|1|ST|{}^{}^99HT|1.0.0.0.1|{}|||{}~{}|||F|||{}||||{}\r", kind, esc(kind), esc(a.message()),
                     priority_flag(a.priority()), technical(a.kind()) ? "ST" : "SP", event_time, device);
  if (auto* m = mdc_of(a.metric()))
    out += fmt::format("OBX|2|NM|{}|1.0.0.0.2|{}|{}|||||F\r", m->code, a.value(), m->unit);
  out += fmt::format("OBX|3|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.0.0.0.3|{}||||||F\r", phase(e.type()));
  out += fmt::format("OBX|4|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.0.0.0.4|{}||||||F\r",
                     a.state() == v1::ALERT_STATE_RESOLVED ? "inactive" : "active");
  out += fmt::format("OBX|5|ST|68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC|1.0.0.0.5|{}||||||F\r", inactivation(e));
  return out;
}

}  // namespace healthtwin::hl7
