#include "actors/twin/alert_text.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace healthtwin::actors {

namespace {

using models::alert_kind;
using models::metric;

std::string_view band_name(models::news2_band b) {
  switch (b) {
    case models::news2_band::high: return "high";
    case models::news2_band::medium: return "medium";
    case models::news2_band::low_medium: return "low-medium";
    case models::news2_band::low: break;
  }
  return "low";
}

/// The IEC priority a NEWS2 band's alert reaches once its onset elapsed.
models::priority band_priority(models::news2_band b) {
  switch (b) {
    case models::news2_band::high: return models::priority::high;
    case models::news2_band::medium: return models::priority::medium;
    case models::news2_band::low_medium: return models::priority::low;
    case models::news2_band::low: break;
  }
  return models::priority::none;
}

/// What a NEWS2 alert of priority `level` asks for (RCP 2017 responses).
std::string_view news2_response(models::priority level) {
  switch (level) {
    case models::priority::high: return "high: emergency response";
    case models::priority::medium: return "medium: urgent review";
    default: break;
  }
  return "low: ward-based response";
}

}  // namespace

std::string describe_finding(const models::finding& f, const models::patient_model& model,
                             int64_t time_ms) {
  auto name = models::to_string(f.subject);
  auto unit = models::unit_of(f.subject);
  switch (f.kind) {
    case alert_kind::news2: {
      auto& n = model.news2();
      if (f.index == 1)
        return fmt::format("NEWS2 rising: {:+.0f} in {} min (now {})", f.detail,
                           models::news2_rise_window_ms / 60'000, n.total);
      // The text follows the alert's priority; a score already in a higher
      // band (its onset not yet elapsed) is said as such, not as its response.
      return fmt::format("NEWS2 {}{}: {}{}", n.total, n.complete ? "" : " (incomplete: lower bound)",
                         news2_response(f.level),
                         band_priority(n.band) > f.level
                             ? fmt::format(" (score in the {} band for less than its onset)",
                                           band_name(n.band))
                             : std::string{});
    }
    case alert_kind::threshold:  // index 1: the low limits, 0: the high ones
      return fmt::format("{} {}: {:g} {}", name, f.index == 1 ? "low" : "high", f.value, unit);
    case alert_kind::trend_forecast: {
      auto& target = models::forecast_targets[f.index % models::forecast_targets.size()];
      if (f.what == models::finding::change::cleared)
        return fmt::format("{} trend towards {} {:g} {} has turned", name,
                           target.below ? "below" : "above", target.threshold, unit);
      return fmt::format("{} predicted {} {:g} {} in {} min (now {:.1f}, {:+.2f} {}/min)", name,
                         target.below ? "below" : "above", target.threshold, unit,
                         std::max<int64_t>(0, (f.predicted_ms - time_ms + 30'000) / 60'000),
                         f.value, f.detail, unit);
    }
    case alert_kind::baseline_anomaly:
      return fmt::format("{} {:g} {} is {:.1f} SD from this patient's baseline {:.1f}", name,
                         f.value, unit, f.detail,
                         model.baseline(f.subject).mean());
    case alert_kind::signal_quality:
      if (f.index == 1)
        return fmt::format("no {} signal from {} (leads, probe or line off?)", name, f.device);
      if (f.subject == metric::spo2)
        return fmt::format("spo2 probe off? reading {:g} %", f.value);
      return fmt::format("{} signal frozen at {:g} {}", name, f.value, unit);
    case alert_kind::device_offline:
      return fmt::format("device {} sends no data ({:.0f} s)", f.device, f.value);
    case alert_kind::battery_low:
      return fmt::format("device {} battery {:g} %", f.device, f.value);
    case alert_kind::clock_drift:
      return fmt::format("device {} clock is {:.0f} s {} the node's: its readings' times are off", f.device,
                         f.value < 0 ? -f.value : f.value, f.value < 0 ? "ahead of" : "behind");
    case alert_kind::device_unassigned: break;
  }
  return std::string{models::to_string(f.kind)};
}

}  // namespace healthtwin::actors
