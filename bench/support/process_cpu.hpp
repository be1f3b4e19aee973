#pragma once
// What a process has used, read from /proc (Linux): for benchmarks that
// report a node's CPU per unit of work.

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <unistd.h>

namespace healthtwin::bench {

/// User + system CPU seconds process `pid` has used so far (0 if unreadable).
inline double process_cpu_s(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 > text.size())
    return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14)
      utime = std::stoull(field);
    if (i == 15)
      stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// Resident set of process `pid`, MB (0 if unreadable).
inline double process_rss_mb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

}  // namespace healthtwin::bench
