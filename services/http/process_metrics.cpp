#include "services/http/process_metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace healthtwin::services {

namespace {

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

// Fields 14, 15 (utime, stime, in ticks), 22 (start time, ticks since
// boot), 23 (vsize, bytes), 24 (rss, pages) of /proc/self/stat.
struct stat_fields {
  double cpu_seconds = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
};

bool read_stat(stat_fields& out) {
  std::ifstream in{"/proc/self/stat"};
  std::string line;
  if (!std::getline(in, line))
    return false;
  auto close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos)
    return false;
  std::istringstream rest{line.substr(close + 2)};
  std::string field;
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (int i = 3; rest >> field; ++i) {
    if (i == 14 || i == 15)
      out.cpu_seconds += std::stod(field) / ticks;
    else if (i == 22)
      out.start_ticks = std::stod(field);
    else if (i == 23)
      out.vsize = std::stod(field);
    else if (i == 24) {
      out.rss_pages = std::stod(field);
      return true;
    }
  }
  return false;
}

double boot_time_seconds() {
  std::ifstream in{"/proc/stat"};
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime" && in >> value)
      return value;
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

struct process_metrics::impl {
  std::mutex mtx;
  prometheus::Counter& cpu;
  prometheus::Gauge& rss;
  prometheus::Gauge& vsize;
  prometheus::Gauge& fds;
  prometheus::Gauge& max_fds;
  prometheus::Gauge& start;
  double cpu_seen = 0;

  explicit impl(prometheus::Registry& r)
    : cpu(prometheus::BuildCounter()
              .Name("process_cpu_seconds_total")
              .Help("User and system CPU time spent in seconds")
              .Register(r)
              .Add({})),
      rss(gauge(r, "process_resident_memory_bytes", "Resident memory size in bytes")),
      vsize(gauge(r, "process_virtual_memory_bytes", "Virtual memory size in bytes")),
      fds(gauge(r, "process_open_fds", "Number of open file descriptors")),
      max_fds(gauge(r, "process_max_fds", "Maximum number of open file descriptors")),
      start(gauge(r, "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds")) {}
};

process_metrics::process_metrics(prometheus::Registry& registry) : impl_(std::make_unique<impl>(registry)) {
  refresh();
}

process_metrics::~process_metrics() = default;

void process_metrics::refresh() {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  stat_fields s;
  if (read_stat(s)) {
    if (s.cpu_seconds > impl_->cpu_seen) {
      impl_->cpu.Increment(s.cpu_seconds - impl_->cpu_seen);
      impl_->cpu_seen = s.cpu_seconds;
    }
    impl_->rss.Set(s.rss_pages * static_cast<double>(sysconf(_SC_PAGESIZE)));
    impl_->vsize.Set(s.vsize);
    impl_->start.Set(boot_time_seconds() + s.start_ticks / static_cast<double>(sysconf(_SC_CLK_TCK)));
  }
  std::error_code ec;
  size_t open = 0;
  for (auto it = std::filesystem::directory_iterator{"/proc/self/fd", ec}; !ec && it != std::filesystem::directory_iterator{};
       it.increment(ec))
    ++open;
  impl_->fds.Set(static_cast<double>(open));
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
    impl_->max_fds.Set(static_cast<double>(lim.rlim_cur));
}

}  // namespace healthtwin::services
