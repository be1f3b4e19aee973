// Evaluates the patient models on labelled simulated stays against a plain
// static-threshold alarm on the same data: sensitivity (episodes alerted
// before the clinical threshold), median lead time, and false alerts per
// patient-day, per alert kind and overall. Results: docs/model-evaluation.md.
//
//   build/bench/model_eval --stable 300 --deteriorating 300 --seed 42
#include <algorithm>
#include <cstdlib>
#include <array>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <random>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "actors/models/alert_policy.hpp"
#include "actors/models/patient_model.hpp"
#include "bench/twinsim/scenario_sim.hpp"

using namespace healthtwin;
using models::alert_kind;
using models::metric;

namespace {

/// An alert as a clinician would see it appear.
struct raised_alert {
  int64_t time_ms;
  alert_kind kind;
  bool technical;
  bool artefact = false;  ///< raised on a reading that is an artefact
  metric subject{};
  models::priority level{};
  uint8_t index = 0;
};

/// A bedside monitor's factory default alarm limits, adult (docs/alerts.md
/// has the sources): one low and one high limit per metric, no priority
/// levels. nullopt: no limit on that side.
struct monitor_limit {
  std::optional<double> low, high;
};
monitor_limit bedside_monitor_limits(metric m) {
  switch (m) {
    case metric::heart_rate: return {50, 120};
    case metric::spo2: return {90, std::nullopt};
    case metric::respiration_rate: return {5, 30};
    case metric::systolic_bp: return {90, 160};
    case metric::diastolic_bp: return {50, 90};
    case metric::temperature: return {35.0, 39.0};
    case metric::glucose: return {70, 250};
    default: return {};
  }
}

/// The plain static-threshold alarm of a bedside monitor: an alert each
/// time a measured reading goes beyond one of its factory default limits
/// (each side its own alarm), no delay, no hysteresis, no artefact
/// handling. Readings that are no measurement (0 on a channel without
/// signal, flagged readings) are its technical alarms, not counted here.
class static_threshold_alarm {
public:
  void apply(metric m, double v, int64_t t, bool artefact, models::reading_quality q,
             std::vector<raised_alert>& out) {
    if (!models::charted(models::effective_quality(m, v, q)))
      return;
    auto limits = bedside_monitor_limits(m);
    auto i = static_cast<size_t>(m);
    auto check = [&](bool beyond, bool& active) {
      if (beyond && !active)
        out.push_back({t, alert_kind::threshold, false, artefact, m, models::priority::medium});
      active = beyond;
    };
    check(limits.low && v < *limits.low, low_[i]);
    check(limits.high && v > *limits.high, high_[i]);
  }

private:
  std::array<bool, models::metric_count + 1> low_{}, high_{};
};

struct stay_result {
  bench::scenario_labels labels;
  int64_t duration_ms = 0;
  std::vector<raised_alert> model;
  std::vector<raised_alert> baseline;
};

stay_result simulate(uint64_t seed, const bench::scenario_sim::settings& s,
                     const models::patient_settings& ps, bool shuffle) {
  bench::scenario_sim sim{seed, s};
  auto readings = sim.run();
  stay_result r;
  r.labels = sim.labels();
  r.duration_ms = s.duration_ms;
  models::patient_model model;
  model.configure(ps);
  static_threshold_alarm alarm;
  std::vector<models::finding> findings;
  std::vector<models::frame_reading> frame;
  std::mt19937 order{static_cast<unsigned>(seed)};
  // The readings of one moment are one frame, in the order the monitor
  // happened to send them (shuffled with --shuffle).
  for (size_t i = 0; i < readings.size();) {
    auto t = readings[i].time_ms;
    auto first = i;
    frame.clear();
    bool artefact = false;
    for (; i < readings.size() && readings[i].time_ms == t; ++i) {
      auto& x = readings[i];
      frame.push_back({x.metric, x.value, x.quality, "monitor"});
      artefact = artefact || x.artefact;
      alarm.apply(x.metric, x.value, t, x.artefact, x.quality, r.baseline);
    }
    if (shuffle)
      std::shuffle(frame.begin(), frame.end(), order);
    findings.clear();
    model.apply_frame(t, frame, findings);
    for (auto& f : findings) {
      if (f.what != models::finding::change::raised)
        continue;
      // An alert is on an artefact when an artefact reading of its metric
      // in the frame (of any NEWS2 input, for NEWS2) reached the models:
      // the latest value is that reading (one held back changed nothing).
      bool on_artefact = false;
      for (auto k = first; k < i; ++k) {
        auto& x = readings[k];
        auto& latest = model.latest(x.metric);
        bool used = latest.present && latest.time_ms == t && latest.value == x.value &&
                    models::charted(models::effective_quality(x.metric, x.value, x.quality));
        on_artefact = on_artefact ||
                      (x.artefact && used &&
                       (x.metric == f.subject || (f.kind == alert_kind::news2 && models::is_news2_input(x.metric))));
      }
      r.model.push_back(
          {t, f.kind, !models::is_clinical(f.kind), on_artefact, f.subject, f.level, f.index});
    }
    (void)artefact;
  }
  return r;
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Sensitivity, lead time and false alerts of one alert source (a kind, or
/// all clinical kinds) over all stays.
struct score {
  int episodes = 0;
  int alerted = 0;
  std::vector<double> lead_min;
  int false_alerts = 0;
  double patient_days = 0;

  void add(const stay_result& r, const std::vector<raised_alert>& alerts,
           const std::optional<alert_kind>& only) {
    patient_days += static_cast<double>(r.duration_ms) / 86'400'000;
    auto& l = r.labels;
    // Alerts from onset until 30 min after recovery are about the episode.
    auto in_episode = [&](int64_t t) {
      return l.kind != bench::episode_kind::none && t >= l.onset_ms && t <= l.end_ms + 1'800'000;
    };
    std::optional<int64_t> first;
    for (auto& a : alerts) {
      if (a.technical || (only && a.kind != *only))
        continue;
      if (a.artefact || !in_episode(a.time_ms)) {
        ++false_alerts;
        continue;
      }
      if (l.threshold_ms >= 0 && a.time_ms <= l.threshold_ms && !first)
        first = a.time_ms;
    }
    if (l.kind != bench::episode_kind::none && l.threshold_ms >= 0) {
      ++episodes;
      if (first) {
        ++alerted;
        lead_min.push_back(static_cast<double>(l.threshold_ms - *first) / 60'000);
      }
    }
  }

  std::string row(const std::string& name) const {
    return fmt::format("| {} | {}/{} ({:.1f} %) | {:.1f} | {:.2f} |", name, alerted, episodes,
                       episodes ? 100.0 * alerted / episodes : 0.0, median(lead_min),
                       patient_days > 0 ? false_alerts / patient_days : 0.0);
  }
};

/// Clinical alerts raised on stable stays, per patient-day: what a ward
/// hears from patients who are fine.
double stable_per_day(const std::vector<stay_result>& stays, bool baseline) {
  double days = 0;
  int alerts = 0;
  for (auto& r : stays) {
    if (r.labels.kind != bench::episode_kind::none)
      continue;
    days += static_cast<double>(r.duration_ms) / 86'400'000;
    for (auto& a : baseline ? r.baseline : r.model)
      alerts += a.technical ? 0 : 1;
  }
  return days > 0 ? alerts / days : 0;
}

std::string_view episode_name(bench::episode_kind k) {
  switch (k) {
    case bench::episode_kind::sepsis: return "sepsis-like";
    case bench::episode_kind::respiratory: return "respiratory failure";
    case bench::episode_kind::cardiac: return "cardiac";
    case bench::episode_kind::hypoglycaemia: return "hypoglycaemia";
    case bench::episode_kind::none: break;
  }
  return "none";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"model_eval: patient models vs a static-threshold alarm on labelled stays"};
  int stable = 300, deteriorating = 300;
  uint64_t seed = 42;
  double glucose_share = 0.25;
  bool no_artefacts = false;
  bool shuffle = false;
  int64_t sample_ms = 5000;
  app.add_option("--stable", stable, "stable 24 h stays")->capture_default_str();
  app.add_option("--deteriorating", deteriorating, "24 h stays with one episode")
      ->capture_default_str();
  app.add_option("--seed", seed, "first random seed (stay i uses seed + i)")->capture_default_str();
  app.add_option("--glucose-share", glucose_share, "share of patients with a glucose monitor")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_flag("--no-artefacts", no_artefacts, "clean signals (no motion, probe-off, drops)");
  app.add_option("--sample-ms", sample_ms, "continuous signals every this long (1000, 5000, 60000)")
      ->check(CLI::Range(int64_t{1000}, int64_t{60'000}))
      ->capture_default_str();
  app.add_flag("--shuffle", shuffle, "readings of a frame in random order");
  models::patient_settings ps;
  app.add_option("--baseline-k", ps.baseline_k, "patient setting: baseline anomaly SDs")
      ->capture_default_str();
  int64_t baseline_min = ps.baseline_min_duration_ms / 60'000;
  app.add_option("--baseline-minutes", baseline_min, "patient setting: baseline anomaly duration")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  ps.baseline_min_duration_ms = baseline_min * 60'000;
  if (auto bad = ps.validate()) {
    fmt::print(stderr, "invalid patient setting: {}\n", *bad);
    return 2;
  }

  std::vector<stay_result> stays;
  int total = stable + deteriorating;
  for (int i = 0; i < total; ++i) {
    bench::scenario_sim::settings s;
    s.deteriorates = i >= stable;
    // Every 4th patient (by default) wears a glucose monitor.
    s.has_glucose_monitor = (i % 100) < static_cast<int>(glucose_share * 100);
    s.artefacts = !no_artefacts;
    s.sample_ms = sample_ms;
    stays.push_back(simulate(seed + static_cast<uint64_t>(i), s, ps, shuffle));
  }

  std::vector<std::pair<std::string, std::optional<alert_kind>>> sources{
      {"all clinical alerts", std::nullopt},
      {"threshold (with delays)", alert_kind::threshold},
      {"NEWS2 (band or rising)", alert_kind::news2},
      {"trend forecast", alert_kind::trend_forecast},
      {"baseline anomaly", alert_kind::baseline_anomaly}};
  fmt::print("seed {}, {} stable + {} deteriorating stays of 24 h, continuous signals every {} s, "
             "glucose monitor share {}, artefacts {}{}\n\n",
             seed, stable, deteriorating, sample_ms / 1000.0, glucose_share,
             no_artefacts ? "off" : "on", shuffle ? ", frames shuffled" : "");
  fmt::print("| source | episodes alerted before threshold | median lead (min) | false alerts "
             "/ patient-day |\n|---|---|---|---|\n");
  score baseline;
  for (auto& r : stays)
    baseline.add(r, r.baseline, std::nullopt);  // the bedside monitor's limits
  std::vector<score> scores(sources.size());
  for (auto& r : stays)
    for (size_t k = 0; k < sources.size(); ++k)
      scores[k].add(r, r.model, sources[k].second);
  for (size_t k = 0; k < sources.size(); ++k)
    fmt::print("{}\n", scores[k].row("model: " + sources[k].first));
  fmt::print("{}\n", baseline.row("static-threshold baseline"));

  fmt::print("\nper episode kind (all clinical alerts vs baseline)\n\n| episode | model alerted | "
             "model median lead (min) | baseline alerted | baseline median lead (min) |\n"
             "|---|---|---|---|---|\n");
  for (auto k : {bench::episode_kind::sepsis, bench::episode_kind::respiratory,
                 bench::episode_kind::cardiac, bench::episode_kind::hypoglycaemia}) {
    score m, b;
    for (auto& r : stays) {
      if (r.labels.kind != k)
        continue;
      m.add(r, r.model, std::nullopt);
      b.add(r, r.baseline, std::nullopt);
    }
    fmt::print("| {} | {}/{} | {:.1f} | {}/{} | {:.1f} |\n", episode_name(k), m.alerted,
               m.episodes, median(m.lead_min), b.alerted, b.episodes, median(b.lead_min));
  }

  if (std::getenv("MODEL_EVAL_BREAKDOWN")) {
    for (auto k : {bench::episode_kind::sepsis, bench::episode_kind::respiratory,
                   bench::episode_kind::cardiac, bench::episode_kind::hypoglycaemia})
      for (size_t j = 1; j < sources.size(); ++j) {
        score one;
        for (auto& r : stays)
          if (r.labels.kind == k)
            one.add(r, r.model, sources[j].second);
        fmt::print("{} by {}: {}/{}, median lead {:.1f} min\n", episode_name(k), sources[j].first,
                   one.alerted, one.episodes, median(one.lead_min));
      }
    for (auto& r : stays) {
      score one;
      one.add(r, r.model, std::nullopt);
      if (one.episodes == 1 && one.alerted == 0)
        fmt::print("missed {}: threshold {:.1f} min after onset; first alert in episode {}\n",
                   episode_name(r.labels.kind),
                   static_cast<double>(r.labels.threshold_ms - r.labels.onset_ms) / 60'000, [&] {
                     for (auto& a : r.model)
                       if (!a.technical && a.time_ms >= r.labels.onset_ms)
                         return fmt::format("{:.1f} min after onset ({} {} p{}{})",
                                            static_cast<double>(a.time_ms - r.labels.onset_ms) / 60'000,
                                            models::to_string(a.kind), models::to_string(a.subject),
                                            static_cast<int>(a.level), a.artefact ? ", on an artefact" : "");
                     return std::string{"none"};
                   }());
    }
    std::map<std::string, int> causes;
    for (auto& r : stays)
      for (auto& a : r.model)
        if (!a.technical && (a.artefact || r.labels.kind == bench::episode_kind::none))
          ++causes[fmt::format("{} {} p{} {}", models::to_string(a.kind),
                               models::to_string(a.subject), static_cast<int>(a.level),
                               a.artefact ? "artefact" : "")];
    for (auto& [k, n] : causes)
      fmt::print("{}: {}\n", k, n);
  }
  int technical = 0, never = 0;
  double days = 0;
  std::map<std::string, int> technical_kinds;
  for (auto& r : stays) {
    days += static_cast<double>(r.duration_ms) / 86'400'000;
    for (auto& a : r.model) {
      if (!a.technical)
        continue;
      ++technical;
      auto what = a.kind != alert_kind::signal_quality ? std::string{models::to_string(a.kind)}
                  : a.index == 1                        ? "no signal"
                  : a.subject == metric::spo2           ? "probe off"
                                                        : "frozen";
      ++technical_kinds[fmt::format("{} {}", what, models::to_string(a.subject))];
    }
    if (r.labels.kind != bench::episode_kind::none && r.labels.threshold_ms < 0)
      ++never;
  }
  fmt::print("\ntechnical alerts (probe off, leads off, frozen signal) / patient-day: {:.2f}\n",
             technical / days);
  for (auto& [what, n] : technical_kinds)
    fmt::print("  {}: {:.2f}\n", what, n / days);
  if (never > 0)
    fmt::print("episodes that never reached the clinical threshold (not counted): {}\n", never);
  auto& all = scores[0];
  auto model_stable = stable_per_day(stays, false), monitor_stable = stable_per_day(stays, true);
  fmt::print("\nstable stays: clinical alerts / patient-day: model {:.2f}, bedside monitor's static "
             "limits {:.2f} (ratio {:.2f})\n",
             model_stable, monitor_stable, monitor_stable > 0 ? model_stable / monitor_stable : 0.0);
  bool ok = all.episodes > 0 && all.alerted >= 0.95 * all.episodes && median(all.lead_min) >= 15 &&
            model_stable * 2 <= monitor_stable && model_stable <= 10;
  fmt::print("\ntargets (>= 95 % alerted, median lead >= 15 min, on stable stays <= half the "
             "monitor's alerts and <= 10 / patient-day): {}\n",
             ok ? "met" : "NOT met");
  return 0;
}
