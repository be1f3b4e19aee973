// The in-memory part of ListPatientTwins (Google Benchmark): before, copy
// one tenant's summaries out of the twin index, filter, sort
// (BM_list_patient_twins); now, select the first page under the lock
// (BM_select_*). Argument: the
// tenant's patients. The page's twin reads (two asks per twin) come on top.
#include <algorithm>
#include <string>

#include <benchmark/benchmark.h>

#include "actors/index/twin_index.hpp"
#include "actors/index/twin_query.hpp"

using namespace healthtwin;

namespace {

void fill(actors::twin_index& index, int64_t patients) {
  for (int64_t i = 0; i < patients; ++i) {
    auto name = "tenants/h1/patients/p" + std::to_string(i);
    index.set_registry(name, "WARD-" + std::to_string(i % 40), std::to_string(i % 30));
    auto news2 = static_cast<uint8_t>(i % 13);
    index.set_news2(name, news2, true, news2 >= 7 ? models::news2_band::high : models::news2_band::low);
    index.set_alerts(name, static_cast<models::priority>(i % 4), static_cast<uint32_t>(i % 3));
  }
}

void BM_list_patient_twins(benchmark::State& state) {
  actors::twin_index index;
  fill(index, state.range(0));
  std::string error;
  for (auto _ : state) {
    auto filter = actors::twin_filter::parse(
        R"(ward = "WARD-3" AND news2 >= 5 AND alerts.priority = HIGH)", error);
    auto order = actors::twin_order::parse("news2 desc, name", error);
    auto all = index.tenant("h1");
    all.erase(std::remove_if(all.begin(), all.end(),
                             [&](auto& p) { return !filter->matches(p.first, p.second); }),
              all.end());
    std::sort(all.begin(), all.end(), [&](auto& a, auto& b) { return order->before(a, b); });
    benchmark::DoNotOptimize(all.data());
  }
}
BENCHMARK(BM_list_patient_twins)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

// What ListPatientTwins does now: count the matches and keep the first page
// + 1 in order, under the index's lock, copying only those (twin_index::select).
void select_page(benchmark::State& state, const char* filter_text) {
  actors::twin_index index;
  fill(index, state.range(0));
  std::string error;
  for (auto _ : state) {
    auto filter = actors::twin_filter::parse(filter_text, error);
    auto order = actors::twin_order::parse("news2 desc, name", error);
    auto page = index.select(
        "h1", [&](std::string_view n, const actors::patient_summary& s) { return filter->matches(n, s); }, {},
        [&](std::string_view a, const actors::patient_summary& x, std::string_view b,
            const actors::patient_summary& y) { return order->before(a, x, b, y); },
        51);
    benchmark::DoNotOptimize(page.first.data());
  }
}
void BM_select_ward_news2_high(benchmark::State& state) {
  select_page(state, R"(ward = "WARD-3" AND news2 >= 5 AND alerts.priority = HIGH)");
}
void BM_select_every_patient(benchmark::State& state) { select_page(state, ""); }
BENCHMARK(BM_select_ward_news2_high)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_select_every_patient)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
