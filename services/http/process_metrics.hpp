#pragma once

#include <memory>

namespace prometheus {
class Registry;
}

namespace healthtwin::services {

/// This process (node, gateway or bridge) as Prometheus's standard process metrics:
/// process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_open_fds, process_max_fds and
/// process_start_time_seconds, read from /proc/self on refresh() (call it
/// before each scrape; thread-safe).
class process_metrics {
public:
  explicit process_metrics(prometheus::Registry& registry);
  ~process_metrics();

  void refresh();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::services
