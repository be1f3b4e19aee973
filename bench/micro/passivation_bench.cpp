// Memory of idle twins (issue 24, part 1; docs/adr/0035): what a live
// device + patient twin pair costs a node, and what is left of it once
// passivated. Runs the node's actor core in-process on a fresh data
// directory, with the twin index kept as the node keeps it:
//
//   passivation_bench DIR [patients=100000] [idle_ms=3000]
//
// registers `patients` patients with one monitor each (every twin is
// passivated after the attachment activated it), then sends one heart rate
// per monitor (every device and patient twin live, every device in the
// sequencer's directory), then waits until every twin is passivated and
// every directory entry dropped. It prints after each phase the heap
// (tcmalloc's allocated bytes) outside RocksDB (its memtables, block cache
// and table readers, which grow with the writes and reads whatever the
// twins hold, are subtracted) and RSS, per pair; and what activating a
// passivated patient by a query costs. The twins' node clock stands still:
// no device is ever reported offline (a million offline alerts would be the
// alert hub's memory, not the twins'), so every passivated patient keeps
// its wake-up entry.

#include <gperftools/malloc_extension.h>

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "actors/index/twin_index.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "bench/support/node_core.hpp"

using namespace healthtwin;
using clock_type = std::chrono::steady_clock;

namespace {

double heap_bytes() {
  size_t v = 0;
  MallocExtension::instance()->GetNumericProperty("generic.current_allocated_bytes", &v);
  return static_cast<double>(v);
}

double rss_bytes() {
  std::ifstream f{"/proc/self/statm"};
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident) * 4096.0;
}

std::string patient_of(uint64_t i) { return models::patient_name("b", fmt::format("p-{}", i)); }
std::string device_of(uint64_t i) { return models::device_name("b", fmt::format("mon-{}", i)); }

bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
  auto deadline = clock_type::now() + limit;
  while (!done()) {
    if (clock_type::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

double directory_entries(prometheus::Registry& metrics) {
  for (auto& family : metrics.Collect())
    if (family.name == "healthtwin_ingest_directory_entries" && !family.metric.empty())
      return family.metric[0].gauge.value;
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: passivation_bench DIR [patients=100000] [idle_ms=3000]\n";
    return 2;
  }
  std::string dir = argv[1];
  uint64_t n = argc > 2 ? std::stoull(argv[2]) : 100'000;
  int64_t idle_ms = argc > 3 ? std::stoll(argv[3]) : 3'000;
  auto store = bench::open_store(dir);
  actors::twin_index index;
  actors::twin_settings twins;
  twins.passivate_after_ms = idle_ms;
  auto ingest = bench::node_core::default_ingest();
  ingest.checkpoint_interval = std::chrono::milliseconds(idle_ms / 4);
  ingest.directory_idle = std::chrono::milliseconds(idle_ms);
  ingest.index = &index;
  auto frozen = models::wall_clock_ms();
  bench::node_core core{*store, twins, ingest, [frozen] { return frozen; }};
  if (auto err = core.seq->recover()) {
    std::cerr << storage::describe(err) << "\n";
    return 1;
  }
  core.seq->start();
  auto twins_heap = [&] {
    auto m = store->memory();
    return heap_bytes() - static_cast<double>(m.memtables + m.block_cache + m.table_readers);
  };
  auto report = [&](const char* phase, double heap0, double rss0) {
    auto heap = twins_heap(), rss = rss_bytes();
    std::cout << fmt::format("{:<42} heap outside RocksDB {:7.1f} MB ({:+6.0f} B per pair), "
                             "RSS {:7.1f} MB ({:+6.0f} B per pair)\n",
                             phase, heap / 1e6, (heap - heap0) / static_cast<double>(n), rss / 1e6,
                             (rss - rss0) / static_cast<double>(n))
              << std::flush;
  };
  auto all_passivated = [&] {
    return core.counters.devices.load() == 0 && core.counters.patients.load() == 0;
  };
  auto heap0 = twins_heap(), rss0 = rss_bytes();
  report("empty node", heap0, rss0);

  bench::submitter submit{*core.seq};
  auto t0 = clock_type::now();
  for (uint64_t i = 0; i < n; ++i) {
    storage::patient_record p;
    p.name = patient_of(i);
    p.ward = fmt::format("WARD-{}", i % 40);
    p.bed = std::to_string(i % 30);
    submit.registry(actors::create_patient{p});
    storage::device_record d;
    d.name = device_of(i);
    submit.registry(actors::create_device{d});
    submit.registry(actors::assign_device{d.name, p.name});
  }
  submit.wait_below(1);
  std::cout << fmt::format("registered {} patients and monitors in {:.1f} s\n", n,
                           std::chrono::duration<double>(clock_type::now() - t0).count());
  if (!wait_until(all_passivated, std::chrono::seconds(600))) {
    std::cerr << "twins activated by the attachment were not passivated\n";
    return 1;
  }
  auto heap1 = twins_heap(), rss1 = rss_bytes();
  report("registered, every twin passivated", heap0, rss0);

  uint32_t index_in_batch = 0;
  std::vector<actors::ingest_group> groups;
  for (uint64_t i = 0; i < n; ++i) {
    actors::ingest_group g;
    g.device = device_of(i);
    g.first_index = index_in_batch;
    g.readings.push_back({1, 1'700'000'000'000, 70.0, index_in_batch++, models::metric::heart_rate});
    groups.push_back(std::move(g));
    if (groups.size() == 1000 || i + 1 == n) {
      submit.ingest(std::move(groups), index_in_batch);
      groups = {};
      index_in_batch = 0;
    }
  }
  submit.wait_below(1);
  wait_until([&] { return core.flow.pending.load() == 0; }, std::chrono::seconds(600));
  std::cout << fmt::format("live: {} device and {} patient twins\n", core.counters.devices.load(),
                           core.counters.patients.load());
  report("one reading each: every pair live", heap1, rss1);
  auto heap2 = twins_heap();

  t0 = clock_type::now();
  if (!wait_until([&] { return all_passivated() && directory_entries(core.metrics) == 0; },
                  std::chrono::seconds(600))) {
    std::cerr << "not every twin passivated or directory entry dropped\n";
    return 1;
  }
  std::cout << fmt::format("every twin passivated and directory entry dropped {:.1f} s after idle\n",
                           std::chrono::duration<double>(clock_type::now() - t0).count());
  report("idle again: every pair passivated", heap1, rss1);
  MallocExtension::instance()->ReleaseFreeMemory();
  report("  the same, tcmalloc's free pages released", heap1, rss1);
  std::cout << fmt::format("per live pair (device + patient twin + directory entry): {:.0f} B of heap\n",
                           (heap2 - twins_heap()) / static_cast<double>(n));
  std::cout << fmt::format("per passivated pair, registry facts in the twin index included: {:.0f} B of heap\n",
                           (twins_heap() - heap0) / static_cast<double>(n));

  // Activation by a query: a patient view of passivated twins, one at a time.
  caf::scoped_actor self{*core.sys};
  uint64_t asked = std::min<uint64_t>(n, 2000);
  t0 = clock_type::now();
  for (uint64_t i = 0; i < asked; ++i) {
    auto name = patient_of(i * (n / asked));
    self->request(core.shards[models::shard_of(name, store->shards())], std::chrono::seconds(10),
                  actors::patient_view_atom::value, name)
        .receive([](const actors::patient_view&) {},
                 [](const caf::error& e) { std::cerr << to_string(e) << "\n"; });
  }
  std::cout << fmt::format("a query activating a passivated patient: {:.0f} us each ({} asked)\n",
                           std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() /
                               static_cast<double>(asked),
                           asked);
  return 0;
}
