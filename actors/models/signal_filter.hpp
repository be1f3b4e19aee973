#pragma once

#include <cstdint>
#include <vector>

#include "actors/models/metric.hpp"

namespace healthtwin::models {

/// A continuous signal that moves further than this from its recent level
/// at once is held back until the new level is confirmed (motion
/// artefacts, spikes); 0: the metric is not filtered.
double jump_limit(metric m) noexcept;

/// How a jump is confirmed as real: the new level must last this long ...
inline constexpr int64_t jump_confirm_ms = 45'000;
/// ... over this many consistent samples (at one sample a minute a second
/// outlying value is not yet a new level).
inline constexpr uint16_t jump_confirm_samples = 3;
/// After this long without an accepted reading the level is not recent.
inline constexpr int64_t jump_reference_gap_ms = 120'000;

/// The artefact filter of one continuous signal (heart rate, respiration
/// rate, SpO2), judged by the signal's behaviour rather than by the
/// previous sample alone: a reading within jump_limit() of the recent level
/// passes and moves the level (30 s smoothing, so gradual change passes); a
/// reading far from it is held back (kept from every model) until readings
/// consistent with each other confirm the new level — jump_confirm_samples
/// of them over jump_confirm_ms; a return to the old level ends the jump as
/// an artefact. Without a recent level (after a gap) a reading far from the
/// last known level, or any reading that comes while the device reports no
/// signal, is held until a second, consistent one confirms it: a lone value
/// inside a stretch of no signal never reaches the models. The first
/// reading of all passes.
///
/// A plain value type; not thread-safe.
class jump_filter {
public:
  enum class verdict : uint8_t {
    pass,       ///< within the recent level
    held,       ///< held back
    confirmed,  ///< confirms the held level: apply held() first, then it
  };

  /// Judges `v` at data time `t`; `amid_no_signal`: the device reported no
  /// signal for the metric since its last valid reading.
  verdict admit(metric m, double v, int64_t t, bool amid_no_signal = false) noexcept;

  /// After `confirmed`: the readings that were held, which turned out real
  /// — the first of the new level and the one before the confirming one,
  /// oldest first (so a condition's onset counts from the level's start).
  struct sample {
    double value = 0;
    int64_t time_ms = 0;
  };
  std::vector<sample> held() const;

  struct state {
    double reference = 0;      ///< smoothed recent level
    int64_t reference_ms = 0;  ///< when it was last moved
    bool has_reference = false;
    double candidate = 0;      ///< the held level waiting for confirmation
    int64_t candidate_since = 0;
    uint16_t candidate_samples = 0;  ///< 0: no candidate
    double first_value = 0;          ///< the candidate's first reading
    sample previous;                 ///< the candidate's reading before the latest
    uint8_t held = 0;                ///< readings held() returns after a confirmation
  };
  const state& save() const noexcept { return st_; }
  void restore(const state& s) noexcept { st_ = s; }

private:
  state st_;
};

}  // namespace healthtwin::models
