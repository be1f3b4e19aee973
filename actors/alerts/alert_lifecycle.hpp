#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "actors/alerts/alert_hub.hpp"

namespace healthtwin::actors {

/// The alert lifecycle's rules, without storage, actors or a clock of its
/// own: what each transition does to an alert record at node time `now`.
/// The alert hub applies them, persists the result and publishes the event.
///
///   raise        → active, notified now, silenced if a silence covers it
///   update       → new priority, value, message, forecast; a higher
///                  priority is a new notification (escalation restarts)
///   acknowledge  → acknowledged by someone (escalation stops)
///   escalate     → an active alert of at least the escalation priority,
///                  unacknowledged and not silenced for the escalation
///                  time since its last notification, is notified again
///                  one level higher
///   silence      → for a patient (one metric or all), at most 4 h ahead;
///                  marks its open alerts and covers new ones until it ends
///   resolve      → resolved: automatically (the condition cleared, with
///                  the clearing value and time) or by hand (who, a note)
class alert_lifecycle {
public:
  struct policy {
    int64_t escalate_after_ms = 120'000;
    models::priority escalate_priority = models::priority::high;
  };

  explicit alert_lifecycle(policy p) : policy_(p) {}

  /// A new alert, raised at `now` under the patient's `silences`.
  void raise(alert_record& a, int64_t now, const std::vector<alert_silence>& silences) const;

  /// The condition changed; true when this is a new notification (the
  /// priority went up).
  bool update(alert_record& a, models::priority level, double value, std::string message, int64_t predicted_ms,
              int64_t now) const;

  void acknowledge(alert_record& a, const std::string& who, const std::string& note, int64_t now) const;

  /// True when `a` was notified again (one escalation level higher).
  bool escalate(alert_record& a, int64_t now) const;

  /// Whether a silence until `s.until_ms` may start at `now`: in the future
  /// and at most max_silence_ms ahead.
  static bool silence_allowed(const alert_silence& s, int64_t now);
  /// Whether the silence applies to the open alert `a` (its patient, and its
  /// metric unless the silence is for all of them); if so, marks it.
  static bool apply_silence(alert_record& a, const alert_silence& s);
  /// Until when (node time) a new alert raised at `now` is silenced; 0: not.
  static int64_t silenced_until(const alert_record& a, int64_t now, const std::vector<alert_silence>& silences);

  /// The condition cleared at `time_ms` (device time) with `value`.
  static void resolve(alert_record& a, double value, int64_t time_ms);
  /// A clinician resolved it.
  static void resolve_by_hand(alert_record& a, const std::string& who, const std::string& note, int64_t now);

private:
  policy policy_;
};

}  // namespace healthtwin::actors
