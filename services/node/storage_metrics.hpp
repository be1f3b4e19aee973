#pragma once

#include <memory>

namespace prometheus {
class Registry;
}

namespace healthtwin::storage {
class store;
}

namespace healthtwin::node {

/// The store's state as Prometheus metrics (labels: column family names and
/// RocksDB event names only): memory, per-column-family properties, engine
/// state, and RocksDB's tickers as counters. refresh() reads them; call it
/// before each scrape (thread-safe).
class storage_metrics {
public:
  storage_metrics(prometheus::Registry& registry, storage::store& store);
  ~storage_metrics();

  void refresh();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::node
