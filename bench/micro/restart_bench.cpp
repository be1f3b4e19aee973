// Restart at scale (issue 4): how long a node holding many twins and
// readings takes to become ready, and how fast it replays a log tail that
// no snapshot covers. Runs the node's actor core in-process (sequencer,
// shards, twins, alert hub) on a data directory kept between phases:
//
//   restart_bench populate DIR [devices=1000000] [readings=100000000] [per_device=100]
//       registers `devices` monitors on devices/10 patients and ingests
//       `readings` heart rates through the sequencer (`per_device` of a
//       device in a row), then stops cleanly
//       (every twin snapshotted, log checkpointed). Slow: run once. Twins
//       and directory entries idle for 10 s are passivated meanwhile (ADR
//       0035), so that 10,000,000 devices fit in memory; the twins' clock
//       stands still, so that devices without readings raise no offline
//       alerts.
//   restart_bench restart DIR
//       opens the store and recovers: the time until the node would answer
//       (readiness). Twins activate lazily, so this is store open + replay
//       of an empty tail.
//   restart_bench serve DIR [step=10] [rounds=3]
//       restarts, then every `step`-th device (10: a tenth of them streams)
//       sends one reading per round: how fast a restarted node takes them
//       with every twin cold.
//   restart_bench seed DIR
//       what the first twin query after a restart pays: every patient into
//       the twin index with the NEWS2 of its snapshot.
//   restart_bench replay DIR [readings=10000000] [per_entry=10]
//       appends `readings` to the log beyond the checkpoint (as after a
//       crash; `per_entry` consecutive readings of a device per log entry,
//       as a gateway batches them), then recovers: replay rate in readings
//       per second, until every twin applied them. Run `populate` again before repeating (the
//       replay is checkpointed at stop).
//
// Readings are 1 Hz heart rates, 100 s per device and batch group, every
// device in turn; the WAL is not fsynced while populating (it changes
// nothing that is measured).

#include <sys/resource.h>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "actors/shard/shard.hpp"
#include "actors/twin/twin.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/ingest_log.hpp"
#include "storage/store.hpp"
#include "bench/support/node_core.hpp"

using namespace healthtwin;
using bench::node_core;
using bench::open_store;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr uint32_t devices_per_patient = 10;
constexpr int64_t start_time_ms = 1'700'000'000'000;

// CPU time of the whole process (every thread), user + system.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string device_of(uint64_t i) {
  return models::device_name("r", fmt::format("mon-{}", i));
}

int populate(const std::string& dir, uint64_t devices, uint64_t readings, uint64_t per_device) {
  auto store = open_store(dir);
  actors::twin_settings twins;
  twins.passivate_after_ms = 10'000;
  auto ingest = node_core::default_ingest();
  ingest.directory_idle = std::chrono::milliseconds(10'000);
  // The twins' clock stands still while populating: devices registered
  // and never heard from are not reported offline (10 M alerts).
  auto frozen = models::wall_clock_ms();
  node_core core{*store, twins, ingest, [frozen] { return frozen; }};
  if (auto err = core.seq->recover()) {
    std::cerr << storage::describe(err) << "\n";
    return 1;
  }
  core.seq->start();
  auto t0 = clock_type::now();
  bench::submitter submit{*core.seq};
  auto reg = [&](actors::registry_command cmd) { submit.registry(std::move(cmd)); };
  for (uint64_t p = 0; p < devices / devices_per_patient; ++p) {
    storage::patient_record rec;
    rec.name = models::patient_name("r", fmt::format("p-{}", p));
    rec.ward = "ICU-1";
    reg(actors::create_patient{rec});
  }
  for (uint64_t i = 0; i < devices; ++i) {
    storage::device_record d;
    d.name = device_of(i);
    reg(actors::create_device{d});
    reg(actors::assign_device{d.name, models::patient_name("r", fmt::format("p-{}", i / devices_per_patient))});
  }
  submit.wait_below(1);
  std::cout << fmt::format("registered {} devices on {} patients in {:.1f} s ({} failed)\n", devices,
                           devices / devices_per_patient, since(t0), submit.failed())
            << std::flush;
  if (submit.failed())
    return 1;

  // Batches of 1,000 readings: 1000 / per_device devices x per_device s of
  // 1 Hz heart rate each (default 10 x 100 s), as a gateway batches its
  // devices; every device in turn.
  const uint64_t groups_per_batch = std::max<uint64_t>(1, 1000 / per_device);
  auto t1 = clock_type::now();
  uint64_t sent = 0, next_device = 0, round = 0;
  while (sent < readings) {
    std::vector<actors::ingest_group> groups;
    uint32_t index = 0;
    for (uint64_t g = 0; g < groups_per_batch && sent < readings; ++g) {
      actors::ingest_group grp;
      grp.device = device_of(next_device);
      grp.first_index = index;
      for (uint64_t k = 0; k < per_device && sent < readings; ++k, ++sent) {
        auto n = round * per_device + k;
        grp.readings.push_back({n + 1, start_time_ms + static_cast<int64_t>(n) * 1000,
                                60.0 + static_cast<double>(n % 40), index++,
                                models::metric::heart_rate});
      }
      groups.push_back(std::move(grp));
      if (++next_device == devices) {
        next_device = 0;
        ++round;
      }
    }
    submit.ingest(std::move(groups), index);
    if (sent % 10'000'000 == 0)
      std::cout << fmt::format("  {} readings in {:.0f} s\n", sent, since(t1)) << std::flush;
  }
  submit.wait_below(1);
  std::cout << fmt::format("ingested {} readings in {:.1f} s ({} batches failed)\n", readings,
                           since(t1), submit.failed());
  auto t2 = clock_type::now();
  core.seq->stop();  // snapshots every twin, checkpoints the log
  std::cout << fmt::format("clean stop (every twin snapshotted) in {:.1f} s\n", since(t2));
  return submit.failed() ? 1 : 0;
}

// Opens and recovers; prints how long until ready and the replayed count.
int restart(const std::string& dir, const char* what, uint64_t replayed) {
  auto t0 = clock_type::now();
  auto store = open_store(dir);
  auto t_open = since(t0);
  auto core_ptr = std::make_unique<node_core>(*store);
  auto& core = *core_ptr;
  auto t1 = clock_type::now();
  auto cpu0 = cpu_seconds();
  if (auto err = core.seq->recover()) {
    std::cerr << storage::describe(err) << "\n";
    return 1;
  }
  auto t_recover = since(t1);
  auto cpu = cpu_seconds() - cpu0;
  std::cout << fmt::format("{}: store open {:.3f} s, recovery {:.3f} s, ready after {:.3f} s",
                           what, t_open, t_recover, since(t0));
  if (replayed > 0)
    std::cout << fmt::format("; replayed {} readings = {:.0f} readings/s, {:.1f} CPU-s", replayed,
                             static_cast<double>(replayed) / t_recover, cpu);
  {
    caf::scoped_actor self{*core.sys};
    self->request(core.ctx.alert_hub, std::chrono::seconds(30), actors::alert_count_atom::value)
        .receive(
            [&](const actors::alert_counts& c) {
              std::cout << fmt::format("; open alerts: {} high, {} medium, {} low", c.high,
                                       c.medium, c.low);
            },
            [&](const caf::error&) {});
  }
  std::cout << "\n";
  // The clean stop checkpoints: it writes what the replay changed (device
  // snapshots, windows merged with the stored ones).
  auto t2 = clock_type::now();
  core_ptr.reset();
  std::cout << fmt::format("clean stop (final checkpoint) in {:.3f} s\n", since(t2));
  return 0;
}

int seed(const std::string& dir) {
  auto store = open_store(dir);
  actors::twin_index index;
  auto t0 = clock_type::now();
  if (auto err = actors::seed_twin_index(*store, index)) {
    std::cerr << storage::describe(err) << "\n";
    return 1;
  }
  auto secs = since(t0);
  auto patients = index.tenant("r");
  auto scored = std::count_if(patients.begin(), patients.end(),
                              [](auto& p) { return p.second.news2_known; });
  std::cout << fmt::format("twin index seeded with {} patients ({} with NEWS2) in {:.3f} s\n",
                           patients.size(), scored, secs);
  return 0;
}

uint64_t registered_devices(storage::store& store) {
  uint64_t devices = 0;
  if (auto err = store.scan(storage::column::registry, {}, {},
                            [&](std::string_view key, std::string_view) {
                              devices += key.size() > 2 && key[2] == 'd';
                              return true;
                            }))
    return 0;
  return devices;
}

// Restarts and serves: every `step`-th device sends one reading per round
// (new sequence numbers), in batches of 1,000 devices; each round's rate
// until acknowledged and until every twin applied it (cold twins activate
// from their snapshots).
int serve(const std::string& dir, uint64_t step, int rounds) {
  auto t0 = clock_type::now();
  auto store = open_store(dir);
  auto devices = registered_devices(*store);
  auto t_count = since(t0);
  t0 = clock_type::now();
  node_core core{*store};
  if (auto err = core.seq->recover()) {
    std::cerr << storage::describe(err) << "\n";
    return 1;
  }
  core.seq->start();
  std::cout << fmt::format("{} devices registered (counted in {:.1f} s, not part of the start); "
                           "store open and recovery: ready after {:.3f} s\n",
                           devices, t_count, since(t0))
            << std::flush;
  bench::submitter submit{*core.seq};
  for (int round = 0; round < rounds; ++round) {
    auto t1 = clock_type::now();
    uint64_t sent = 0;
    uint32_t index = 0;
    std::vector<actors::ingest_group> groups;
    for (uint64_t d = 0; d < devices; d += step) {
      actors::ingest_group g;
      g.device = device_of(d);
      g.first_index = index;
      g.readings.push_back({2'000'000'000ULL + static_cast<uint64_t>(round),
                            start_time_ms + 10 * 86'400'000LL + round * 1000, 72, index++,
                            models::metric::heart_rate});
      groups.push_back(std::move(g));
      ++sent;
      if (groups.size() == 1000) {
        submit.ingest(std::move(groups), index);
        groups = {};
        index = 0;
      }
    }
    if (!groups.empty())
      submit.ingest(std::move(groups), index);
    submit.wait_below(1);
    auto acked = since(t1);
    while (core.flow.pending.load() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::cout << fmt::format("round {}: {} devices, one reading each: acknowledged in {:.2f} s "
                             "({:.0f} readings/s), applied by every twin after {:.2f} s; live twins: "
                             "{} devices, {} patients\n",
                             round + 1, sent, acked, static_cast<double>(sent) / acked, since(t1),
                             core.counters.devices.load(), core.counters.patients.load())
              << std::flush;
  }
  return submit.failed() ? 1 : 0;
}

// Appends `readings` beyond the checkpoint, as committed but never
// checkpointed before a crash.
int append_tail(const std::string& dir, uint64_t readings, uint64_t per_entry) {
  auto store = open_store(dir);
  storage::ingest_log log{*store};
  auto last = log.last_position();
  if (!last) {
    std::cerr << storage::describe(last.error()) << "\n";
    return 1;
  }
  // The tail uses sequence numbers and times above anything populate sent;
  // the device count comes from the registry.
  auto devices = registered_devices(*store);
  if (devices == 0)
    return 1;
  uint64_t pos = *last, sent = 0, next_device = 0, round = 0;
  while (sent < readings) {
    internal::LogRecord rec;
    rec.set_receive_time_ms(start_time_ms);
    // 1,000 readings per record: `per_entry` consecutive seconds of each
    // of 1000 / per_entry devices, every device in turn.
    for (uint64_t g = 0; g < 1000 / per_entry && sent < readings; ++g) {
      auto* d = rec.add_devices();
      d->set_device(device_of(next_device));
      d->set_patient(models::patient_name("r", fmt::format("p-{}", next_device / devices_per_patient)));
      for (uint64_t k = 0; k < per_entry && sent < readings; ++k, ++sent) {
        auto n = round * per_entry + k;
        d->add_sequence(1'000'000 + n);
        d->add_time_ms(start_time_ms + 86'400'000 + static_cast<int64_t>(n) * 1000);
        d->add_metric(static_cast<uint32_t>(models::metric::heart_rate));
        d->add_value(70);
      }
      if (++next_device == devices) {
        next_device = 0;
        ++round;
      }
    }
    storage::write_batch wb{*store};
    storage::ingest_log::append(wb, ++pos, rec.SerializeAsString());
    if (auto err = store->write(wb, false)) {
      std::cerr << storage::describe(err) << "\n";
      return 1;
    }
  }
  std::cout << fmt::format("appended {} readings ({} log records, {} per device entry) beyond "
                           "position {}\n",
                           readings, pos - *last, per_entry, *last);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: restart_bench populate|restart|serve|seed|replay DIR [args]\n";
    return 2;
  }
  std::string what = argv[1];
  std::string dir = argv[2];
  if (what == "populate")
    return populate(dir, argc > 3 ? std::stoull(argv[3]) : 1'000'000,
                    argc > 4 ? std::stoull(argv[4]) : 100'000'000,
                    argc > 5 ? std::clamp<uint64_t>(std::stoull(argv[5]), 1, 1000) : 100);
  if (what == "restart")
    return restart(dir, "restart after a clean stop", 0);
  if (what == "seed")
    return seed(dir);
  if (what == "serve")
    return serve(dir, argc > 3 ? std::stoull(argv[3]) : 10, argc > 4 ? std::stoi(argv[4]) : 3);
  if (what == "replay") {
    uint64_t n = argc > 3 ? std::stoull(argv[3]) : 10'000'000;
    uint64_t per_entry = argc > 4 ? std::stoull(argv[4]) : 10;
    if (per_entry == 0 || per_entry > 1000) {
      std::cerr << "readings per device entry must be 1-1000\n";
      return 2;
    }
    if (auto rc = append_tail(dir, n, per_entry))
      return rc;
    return restart(dir, "restart with an un-checkpointed log tail", n);
  }
  std::cerr << "unknown phase " << what << "\n";
  return 2;
}
