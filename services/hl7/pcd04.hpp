#pragma once
// IHE PCD-04 Report Alert (Alert Communication Management): an alert event
// of HealthTwin as the ORU^R40 an alarm manager or nurse-call system takes
// (docs/hl7.md, "Alarms out").

#include <cstdint>
#include <string>

#include "healthtwin/v1/alert.pb.h"

namespace healthtwin::hl7 {

/// Who sends and who receives (MSH-3..6, MSH-11).
struct pcd04_identity {
  std::string facility;           ///< our MSH-4
  std::string receiver_app;       ///< MSH-5
  std::string receiver_facility;  ///< MSH-6
  std::string processing_id = "P";
};

/// MSH-10 of the message reporting the event with `resume_token`: the same
/// for every resend, unique per node, so a receiver drops a repeat.
std::string pcd04_control_id(uint64_t resume_token);

/// The ORU^R40 reporting `e`, made at `now_ms` (MSH-7):
///   PID-3   the patient id, with the tenant as assigning authority
///   PV1-3   the ward
///   OBR-2   the alert id (placer); OBR-4 196616^MDC_EVT_ALARM^MDC; OBR-7 raise time
///   OBX 1.0.0.0.1  the alert kind (local code system 99HT), its text, OBX-8
///                  priority (PH/PM/PL) and source (SP physiological, ST technical)
///   OBX 1.0.0.0.2  the measurement in alarm (MDC code, value, unit), when it has one
///   OBX 1.0.0.0.3  68481^MDC_ATTR_EVENT_PHASE: start, continue, end
///   OBX 1.0.0.0.4  68482^MDC_ATTR_ALARM_STATE: active, inactive
///   OBX 1.0.0.0.5  68483^MDC_ATTR_ALARM_INACTIVATION_STATE: enabled,
///                  acknowledged, audio-paused (silenced)
std::string report_alert(const v1::AlertEvent& e, const pcd04_identity& us, int64_t now_ms);

}  // namespace healthtwin::hl7
