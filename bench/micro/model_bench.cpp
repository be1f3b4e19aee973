// Per-reading cost of the patient models (NEWS2 + alert policy + latest
// vitals) and of the series codec, as the patient twin runs them.
#include <benchmark/benchmark.h>

#include <vector>

#include "actors/models/patient_model.hpp"
#include "storage/series_codec.hpp"

using namespace healthtwin;
using models::metric;

namespace {

struct vital_cycle {
  metric m;
  double base;
};

constexpr vital_cycle cycle[] = {{metric::heart_rate, 72},   {metric::respiration_rate, 16},
                                 {metric::spo2, 97},         {metric::temperature, 36.8},
                                 {metric::systolic_bp, 122}, {metric::diastolic_bp, 78}};

void BM_patient_model_apply(benchmark::State& state) {
  models::patient_model model;
  std::vector<models::finding> findings;
  std::vector<models::finding> scratch;
  model.apply(metric::consciousness, 0, 0, "chart", scratch);
  model.apply(metric::oxygen_flow, 0, 0, "chart", scratch);
  int64_t t = 1000;
  size_t i = 0;
  const std::string device = "tenants/demo/devices/mon-00001";
  for (auto _ : state) {
    auto& v = cycle[i % 6];
    findings.clear();
    model.apply(v.m, v.base + static_cast<double>(i % 3), t, device, findings);
    benchmark::DoNotOptimize(findings.data());
    if (++i % 6 == 0)
      t += 1000;
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
