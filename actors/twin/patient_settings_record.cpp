#include "actors/twin/patient_settings_record.hpp"

#include "healthtwin/internal/records.pb.h"

namespace healthtwin::actors {

void to_record(const models::patient_settings& s, internal::PatientSettings& out) {
  out.Clear();
  out.set_spo2_scale2(s.spo2_scale2);
  for (uint8_t n = 1; n <= models::metric_count; ++n) {
    auto& l = s.limits[n];
    if (!l)
      continue;
    auto* r = out.add_limits();
    r->set_metric(n);
    if (l->high_at_or_below) r->set_high_at_or_below(*l->high_at_or_below);
    if (l->medium_at_or_below) r->set_medium_at_or_below(*l->medium_at_or_below);
    if (l->medium_at_or_above) r->set_medium_at_or_above(*l->medium_at_or_above);
    if (l->high_at_or_above) r->set_high_at_or_above(*l->high_at_or_above);
    r->set_hysteresis(l->hysteresis);
  }
  out.set_baseline_k(s.baseline_k);
  out.set_baseline_min_duration_ms(s.baseline_min_duration_ms);
  out.set_forecast_horizon_ms(s.forecast_horizon_ms);
  out.set_glucose_forecast_horizon_ms(s.glucose_forecast_horizon_ms);
  out.set_device_offline_after_ms(s.device_offline_after_ms);
  out.set_battery_low_percent(s.battery_low_percent);
}

std::optional<std::string> from_record(const internal::PatientSettings& r,
                                       models::patient_settings& out) {
  models::patient_settings s;
  s.spo2_scale2 = r.spo2_scale2();
  for (auto& l : r.limits()) {
    if (l.metric() == 0 || l.metric() > models::metric_count)
      return std::string{"limits.metric"};
    models::threshold_limits t;
    if (l.has_high_at_or_below()) t.high_at_or_below = l.high_at_or_below();
    if (l.has_medium_at_or_below()) t.medium_at_or_below = l.medium_at_or_below();
    if (l.has_medium_at_or_above()) t.medium_at_or_above = l.medium_at_or_above();
    if (l.has_high_at_or_above()) t.high_at_or_above = l.high_at_or_above();
    t.hysteresis = l.hysteresis();
    s.limits[l.metric()] = t;
  }
  if (r.has_baseline_k()) s.baseline_k = r.baseline_k();
  if (r.has_baseline_min_duration_ms()) s.baseline_min_duration_ms = r.baseline_min_duration_ms();
  if (r.has_forecast_horizon_ms()) s.forecast_horizon_ms = r.forecast_horizon_ms();
  if (r.has_glucose_forecast_horizon_ms())
    s.glucose_forecast_horizon_ms = r.glucose_forecast_horizon_ms();
  if (r.has_device_offline_after_ms()) s.device_offline_after_ms = r.device_offline_after_ms();
  if (r.has_battery_low_percent()) s.battery_low_percent = r.battery_low_percent();
  if (auto bad = s.validate())
    return bad;
  out = s;
  return std::nullopt;
}

}  // namespace healthtwin::actors
