// Per-reading cost of the patient models and of the series codec, as the
// patient twin runs them.
#include <benchmark/benchmark.h>

#include <vector>

#include "actors/models/patient_model.hpp"
#include "bench/twinsim/scenario_sim.hpp"
#include "storage/series_codec.hpp"

using namespace healthtwin;
using models::metric;

namespace {

// Every model of one patient (latest vitals, NEWS2 and its history,
// threshold conditions, personal baselines, trend forecasts, signal quality,
// the jump filter) on a realistic stream: a simulated 24 h stay with noise,
// artefacts and a deterioration episode, replayed with its clock moving on.
void BM_patient_model_apply(benchmark::State& state) {
  bench::scenario_sim::settings s;
  s.deteriorates = true;
  s.has_glucose_monitor = true;
  bench::scenario_sim sim{7, s};
  auto readings = sim.run();
  models::patient_model model;
  std::vector<models::finding> findings;
  const std::string device = "tenants/demo/devices/mon-00001";
  size_t i = 0;
  int64_t offset = 0;
  for (auto _ : state) {
    auto& r = readings[i];
    findings.clear();
    model.apply(r.metric, r.value, r.time_ms + offset, device, findings);
    benchmark::DoNotOptimize(findings.data());
    if (++i == readings.size()) {
      i = 0;
      offset += s.duration_ms;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_patient_model_apply);

// The same models as a busy node runs them: 10,000 patients, each sent a
// frame of six vitals in turn (what bench/run-benchmarks throughput sends),
// so a patient's state is out of the cache when its next frame comes.
void BM_patient_model_many_patients(benchmark::State& state) {
  constexpr size_t patients = 10'000;
  std::vector<models::patient_model> models(patients);
  std::vector<models::finding> findings;
  const std::string device = "tenants/demo/devices/mon-00001";
  int64_t t = 1'700'000'000'000;
  size_t p = 0;
  uint32_t n = 0;
  for (auto _ : state) {
    double w = static_cast<double>(n % 7);
    std::vector<models::frame_reading> frame{
        {metric::heart_rate, 70 + w, models::reading_quality::valid, device},
        {metric::spo2, 96.0 + (w > 3 ? 1 : 0), models::reading_quality::valid, device},
        {metric::respiration_rate, 15.0 + (w > 4 ? 1 : 0), models::reading_quality::valid, device},
        {metric::systolic_bp, 120 + w, models::reading_quality::valid, device},
        {metric::diastolic_bp, 80 + w, models::reading_quality::valid, device},
        {metric::temperature, 36.8, models::reading_quality::valid, device}};
    findings.clear();
    models[p].apply_frame(t, frame, findings);
    benchmark::DoNotOptimize(findings.data());
    if (++p == patients) {
      p = 0;
      t += 5'000;
      ++n;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 6);
}
BENCHMARK(BM_patient_model_many_patients);

void BM_series_append(benchmark::State& state) {
  storage::series_chunk_builder b;
  int64_t t = 1'700'000'000'000;
  double v = 72;
  size_t n = 0;
  for (auto _ : state) {
    b.append(t, v + static_cast<double>(n % 3));
    t += 1000;
    if (++n % 256 == 0)
      b = storage::series_chunk_builder{};
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_series_append);

}  // namespace

BENCHMARK_MAIN();
