#include "actors/models/signal_filter.hpp"

#include <algorithm>
#include <cmath>

namespace healthtwin::models {

double jump_limit(metric m) noexcept {
  switch (m) {
    case metric::heart_rate: return 20;
    case metric::respiration_rate: return 5;
    case metric::spo2: return 4;
    default: return 0;
  }
}

jump_filter::verdict jump_filter::admit(metric m, double v, int64_t t, bool amid_no_signal) noexcept {
  auto limit = jump_limit(m);
  if (limit <= 0)
    return verdict::pass;
  auto accept = [&](bool smooth) {
    if (smooth) {
      auto dt = static_cast<double>(std::max<int64_t>(t - st_.reference_ms, 1));
      st_.reference += (v - st_.reference) * dt / (30'000.0 + dt);
    } else {
      st_.reference = v;
    }
    st_.reference_ms = t;
    st_.has_reference = true;
    st_.candidate_samples = 0;
  };
  bool has_reference = st_.has_reference && t - st_.reference_ms <= jump_reference_gap_ms;
  if (has_reference && std::abs(v - st_.reference) <= limit) {
    accept(true);
    return verdict::pass;
  }
  if (!has_reference && !amid_no_signal && st_.candidate_samples == 0 &&
      (!st_.has_reference || std::abs(v - st_.reference) <= limit)) {
    accept(false);  // the first reading, or one near where the signal was
    return verdict::pass;
  }
  bool consistent = st_.candidate_samples > 0 && std::abs(v - st_.candidate) <= limit;
  if (!consistent) {  // a new candidate level
    st_.candidate = v;
    st_.candidate_since = t;
    st_.candidate_samples = 1;
    st_.first_value = v;
    st_.previous = sample{v, t};
    return verdict::held;
  }
  auto previous = sample{st_.candidate, st_.previous.time_ms};
  st_.candidate = v;
  if (st_.candidate_samples < UINT16_MAX)
    ++st_.candidate_samples;
  bool confirmed = has_reference ? st_.candidate_samples >= jump_confirm_samples &&
                                       t - st_.candidate_since >= jump_confirm_ms
                                 : st_.candidate_samples >= 2;
  if (confirmed) {  // the new level is real
    st_.previous = previous;
    st_.held = static_cast<uint8_t>(std::min<uint16_t>(st_.candidate_samples - 1, 2));
    accept(false);
    return verdict::confirmed;
  }
  st_.previous = sample{v, t};
  return verdict::held;
}

std::vector<jump_filter::sample> jump_filter::held() const {
  std::vector<sample> out;
  if (st_.held >= 1)
    out.push_back(sample{st_.first_value, st_.candidate_since});
  if (st_.held >= 2 && st_.previous.time_ms != st_.candidate_since)
    out.push_back(st_.previous);
  return out;
}

}  // namespace healthtwin::models
