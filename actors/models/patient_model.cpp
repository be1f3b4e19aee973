#include "actors/models/patient_model.hpp"

#include <algorithm>

namespace healthtwin::models {

bool is_news2_input(metric m) noexcept {
  switch (m) {
    case metric::respiration_rate:
    case metric::spo2:
    case metric::oxygen_flow:
    case metric::systolic_bp:
    case metric::heart_rate:
    case metric::consciousness:
    case metric::temperature:
      return true;
    default:
      return false;
  }
}

void patient_model::set_spo2_scale2(bool on) noexcept {
  spo2_scale2_ = on;
  rescore();
}

news2_inputs patient_model::inputs() const noexcept {
  news2_inputs in;
  auto take = [&](metric m) -> std::optional<observation> {
    auto& v = latest(m);
    if (!v.present)
      return std::nullopt;
    return observation{v.value, v.time_ms};
  };
  in.respiration_rate = take(metric::respiration_rate);
  in.spo2 = take(metric::spo2);
  in.oxygen_flow = take(metric::oxygen_flow);
  in.systolic_bp = take(metric::systolic_bp);
  in.pulse = take(metric::heart_rate);
  in.consciousness = take(metric::consciousness);
  in.temperature = take(metric::temperature);
  in.spo2_scale2 = spo2_scale2_;
  return in;
}

void patient_model::rescore() noexcept {
  news2_ = score_news2(inputs(), newest_ms_, settings_);
}

void patient_model::apply(metric m, double value, int64_t time_ms,
                          std::string_view source_device, std::vector<finding>& out) {
  auto& v = vitals_[static_cast<size_t>(m)];
  if (v.present && time_ms < v.time_ms)
    return;
  v.value = value;
  v.time_ms = time_ms;
  if (v.source_device != source_device)
    v.source_device.assign(source_device);
  v.present = true;
  newest_ms_ = std::max(newest_ms_, time_ms);
  if (auto f = policy_.on_vital(m, value))
    out.push_back(*f);
  if (is_news2_input(m)) {
    rescore();
    if (auto f = policy_.on_news2(news2_))
      out.push_back(*f);
  }
}

void patient_model::restore_vital(metric m, double value, int64_t time_ms,
                                  std::string source_device) {
  auto& v = vitals_[static_cast<size_t>(m)];
  v = latest_vital{value, time_ms, std::move(source_device), true};
  newest_ms_ = std::max(newest_ms_, time_ms);
}

}  // namespace healthtwin::models
