#include "actors/alerts/alert_lifecycle.hpp"

#include <algorithm>

namespace healthtwin::actors {

void alert_lifecycle::raise(alert_record& a, int64_t now, const std::vector<alert_silence>& silences) const {
  a.state = alert_state::active;
  a.notify_time_ms = now;
  a.silenced_until_ms = silenced_until(a, now, silences);
}

bool alert_lifecycle::update(alert_record& a, models::priority level, double value, std::string message,
                             int64_t predicted_ms, int64_t now) const {
  bool renotified = level > a.level;
  if (renotified)
    a.notify_time_ms = now;
  a.level = level;
  a.predicted_time_ms = predicted_ms;
  a.value = value;
  a.message = std::move(message);
  return renotified;
}

void alert_lifecycle::acknowledge(alert_record& a, const std::string& who, const std::string& note,
                                  int64_t now) const {
  a.state = alert_state::acknowledged;
  a.acknowledged_by = who;
  a.acknowledge_note = note;
  a.acknowledge_time_ms = now;
}

bool alert_lifecycle::escalate(alert_record& a, int64_t now) const {
  if (a.state != alert_state::active || a.level < policy_.escalate_priority || a.silenced_until_ms > now ||
      now - a.notify_time_ms < policy_.escalate_after_ms)
    return false;
  ++a.escalation_level;
  a.notify_time_ms = now;
  return true;
}

bool alert_lifecycle::silence_allowed(const alert_silence& s, int64_t now) {
  auto duration = s.until_ms - now;
  return duration > 0 && duration <= max_silence_ms;
}

bool alert_lifecycle::apply_silence(alert_record& a, const alert_silence& s) {
  if (s.patient != a.patient || !(s.subject == models::metric{} || a.subject == s.subject))
    return false;
  a.silenced_until_ms = s.until_ms;
  return true;
}

int64_t alert_lifecycle::silenced_until(const alert_record& a, int64_t now,
                                        const std::vector<alert_silence>& silences) {
  int64_t until = 0;
  for (auto& s : silences)
    if (s.covers(a, now))
      until = std::max(until, s.until_ms);
  return until;
}

void alert_lifecycle::resolve(alert_record& a, double value, int64_t time_ms) {
  a.state = alert_state::resolved;
  a.value = value;
  a.resolve_time_ms = time_ms;
}

void alert_lifecycle::resolve_by_hand(alert_record& a, const std::string& who, const std::string& note,
                                      int64_t now) {
  a.state = alert_state::resolved;
  a.resolved_by = who;
  a.resolve_note = note;
  a.resolve_time_ms = now;
}

}  // namespace healthtwin::actors
