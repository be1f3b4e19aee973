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
