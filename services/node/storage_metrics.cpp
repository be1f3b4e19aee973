#include "services/node/storage_metrics.hpp"

#include <mutex>
#include <string>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "storage/store.hpp"

namespace healthtwin::node {

struct storage_metrics::impl {
  impl(prometheus::Registry& reg, storage::store& s)
      : store(s),
        memory(prometheus::BuildGauge()
                   .Name("healthtwin_storage_memory_bytes")
                   .Help("Memory held by RocksDB, by use")
                   .Register(reg)),
        sst_bytes(prometheus::BuildGauge()
                      .Name("healthtwin_storage_sst_bytes")
                      .Help("Size of the SST files per column family")
                      .Register(reg)),
        live_bytes(prometheus::BuildGauge()
                       .Name("healthtwin_storage_live_data_bytes")
                       .Help("Estimated live data per column family")
                       .Register(reg)),
        keys(prometheus::BuildGauge()
                 .Name("healthtwin_storage_estimated_keys")
                 .Help("Estimated number of keys per column family")
                 .Register(reg)),
        pending(prometheus::BuildGauge()
                    .Name("healthtwin_storage_pending_compaction_bytes")
                    .Help("Bytes compaction still has to rewrite, per column family")
                    .Register(reg)),
        engine(prometheus::BuildGauge()
                   .Name("healthtwin_storage_engine")
                   .Help("RocksDB state: running compactions and flushes, background errors, "
                         "writes stopped (1/0), delayed write rate (bytes/s)")
                   .Register(reg)),
        events(prometheus::BuildCounter()
                   .Name("healthtwin_storage_events_total")
                   .Help("RocksDB statistics tickers (block cache hits and misses, bytes "
                         "written and read, WAL syncs, compaction and flush bytes, stall time)")
                   .Register(reg)) {}

  storage::store& store;
  prometheus::Family<prometheus::Gauge>& memory;
  prometheus::Family<prometheus::Gauge>& sst_bytes;
  prometheus::Family<prometheus::Gauge>& live_bytes;
  prometheus::Family<prometheus::Gauge>& keys;
  prometheus::Family<prometheus::Gauge>& pending;
  prometheus::Family<prometheus::Gauge>& engine;
  prometheus::Family<prometheus::Counter>& events;
  std::mutex mtx;  // scrapes may run on several HTTP threads at once
  std::unordered_map<std::string, uint64_t> last_ticks;  // what the counters already hold
};

storage_metrics::storage_metrics(prometheus::Registry& registry, storage::store& store)
    : impl_(std::make_unique<impl>(registry, store)) {}

storage_metrics::~storage_metrics() = default;

void storage_metrics::refresh() {
  auto& im = *impl_;
  std::lock_guard<std::mutex> guard{im.mtx};
  auto m = im.store.memory();
  im.memory.Add({{"use", "memtables"}}).Set(static_cast<double>(m.memtables));
  im.memory.Add({{"use", "block_cache"}}).Set(static_cast<double>(m.block_cache));
  im.memory.Add({{"use", "table_readers"}}).Set(static_cast<double>(m.table_readers));
  auto st = im.store.stats();
  for (auto& c : st.columns) {
    im.sst_bytes.Add({{"column", c.name}}).Set(static_cast<double>(c.sst_bytes));
    im.live_bytes.Add({{"column", c.name}}).Set(static_cast<double>(c.live_data_bytes));
    im.keys.Add({{"column", c.name}}).Set(static_cast<double>(c.estimated_keys));
    im.pending.Add({{"column", c.name}}).Set(static_cast<double>(c.pending_compaction_bytes));
  }
  im.engine.Add({{"what", "running_compactions"}}).Set(static_cast<double>(st.running_compactions));
  im.engine.Add({{"what", "running_flushes"}}).Set(static_cast<double>(st.running_flushes));
  im.engine.Add({{"what", "background_errors"}}).Set(static_cast<double>(st.background_errors));
  im.engine.Add({{"what", "writes_stopped"}}).Set(st.writes_stopped ? 1 : 0);
  im.engine.Add({{"what", "delayed_write_rate"}}).Set(static_cast<double>(st.delayed_write_rate));
  for (auto& t : im.store.tickers()) {
    auto& last = im.last_ticks[t.name];
    auto& counter = im.events.Add({{"event", t.name}});
    if (t.count > last)
      counter.Increment(static_cast<double>(t.count - last));
    last = t.count;
  }
}

}  // namespace healthtwin::node
