// Capacity of a node's core without the network: the ingest sequencer (group
// commit, fsynced WAL), shards and twins, fed in-process with pre-built
// batches of 1,000 readings from 10,000 patients x 6 vitals.
//
//   ingest_core_bench [seconds=10] [sync_wal=1] [in_flight=64]

#include <caf/all.hpp>
#include <fmt/format.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/shard/shard.hpp"
#include "storage/store.hpp"

using namespace healthtwin;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 10;
  bool sync = argc > 2 ? std::atoi(argv[2]) != 0 : true;
  int in_flight = argc > 3 ? std::atoi(argv[3]) : 64;
  constexpr uint32_t patients = 10'000;

  auto dir = std::filesystem::temp_directory_path() / fmt::format("ingest-core-bench-{}", ::getpid());
  storage::store_settings ss;
  ss.data_dir = dir.string();
  ss.sync_wal = sync;
  auto store = std::move(*storage::store::open(ss));

  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", 2);
  cfg.set("scheduler.max-throughput", 300);
  prometheus::Registry metrics;
  {
    caf::actor_system sys{cfg};
    actors::ingest_flow flow;
    actors::twin_counters counters;
    actors::twin_context ctx;
    ctx.store = store.get();
    ctx.flow = &flow;
    ctx.counters = &counters;
    ctx.alert_hub = actors::spawn_alert_hub(sys, {}, *store, metrics);
    auto shards = actors::spawn_shards(sys, 1024, ctx, metrics);
    actors::ingest_sequencer seq{{}, *store, shards, flow, metrics};
    if (auto err = seq.recover()) {
      std::cerr << storage::describe(err) << "\n";
      return 1;
    }
    seq.start();

    // Register patients and monitors.
    std::vector<std::future<actors::registry_result>> pending;
    auto reg = [&](actors::registry_command cmd) {
      auto p = std::make_shared<std::promise<actors::registry_result>>();
      pending.push_back(p->get_future());
      seq.submit(std::move(cmd), [p](actors::registry_result&& r) { p->set_value(std::move(r)); });
    };
    for (uint32_t i = 0; i < patients; ++i) {
      storage::patient_record p;
      p.name = models::patient_name("b", fmt::format("p-{}", i));
      p.ward = "W";
      storage::device_record d;
      d.name = models::device_name("b", fmt::format("mon-{}", i));
      reg(actors::create_patient{p});
      reg(actors::create_device{d});
      reg(actors::assign_device{d.name, p.name});
    }
    for (auto& f : pending)
      if (auto r = f.get(); r.error) {
        std::cerr << "registry: " << to_string(r.error) << "\n";
        return 1;
      }

    // Feed batches of 1,000 readings (167 devices x 6 vitals) with a bounded
    // number in flight, like several client streams would.
    const models::metric vitals[] = {models::metric::heart_rate, models::metric::respiration_rate,
                                     models::metric::spo2, models::metric::temperature,
                                     models::metric::systolic_bp, models::metric::diastolic_bp};
    const double base[] = {72, 16, 97, 36.8, 122, 78};
    std::mutex mtx;
    std::condition_variable cv;
    int outstanding = 0;
    uint64_t acked = 0, batches = 0;
    uint32_t next_patient = 0;
    uint64_t seq_no = 1;
    int64_t t = 1'700'000'000'000;
    auto t0 = clock_type::now();
    auto end = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    while (clock_type::now() < end) {
      std::vector<actors::ingest_group> groups;
      uint32_t index = 0;
      for (int d = 0; d < 167; ++d) {
        actors::ingest_group g;
        g.device = models::device_name("b", fmt::format("mon-{}", next_patient));
        g.first_index = index;
        for (int k = 0; k < 6; ++k)
          g.readings.push_back({seq_no++, t, base[k], index++, vitals[k]});
        groups.push_back(std::move(g));
        if (++next_patient == patients) {
          next_patient = 0;
          t += 1000;
        }
      }
      {
        std::unique_lock<std::mutex> lock{mtx};
        cv.wait(lock, [&] { return outstanding < in_flight; });
        ++outstanding;
      }
      seq.submit(std::move(groups), index, [&](actors::ingest_result&& r) {
        std::lock_guard<std::mutex> g{mtx};
        acked += r.accepted;
        ++batches;
        --outstanding;
        cv.notify_all();
      });
    }
    {
      std::unique_lock<std::mutex> lock{mtx};
      cv.wait(lock, [&] { return outstanding == 0; });
    }
    auto t_acked = clock_type::now();
    while (flow.pending.load() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto t_applied = clock_type::now();
    auto secs = std::chrono::duration<double>(t_acked - t0).count();
    std::cout << fmt::format(
        "sync_wal={} in_flight={}: {} readings acked in {:.2f} s = {:.0f} readings/s; "
        "applied by twins {:.2f} s later; {:.0f} readings/s acked+applied\n",
        sync, in_flight, acked, secs, static_cast<double>(acked) / secs,
        std::chrono::duration<double>(t_applied - t_acked).count(),
        static_cast<double>(acked) / std::chrono::duration<double>(t_applied - t0).count());
    seq.stop();
    for (auto& s : shards)
      caf::anon_send(s, actors::shutdown_atom::value);
    caf::anon_send_exit(ctx.alert_hub, caf::exit_reason::user_shutdown);
  }
  store.reset();
  std::filesystem::remove_all(dir);
}
