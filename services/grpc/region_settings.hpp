#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>

namespace healthtwin::services {

/// How this node reaches the other regions (--region*).
struct region_settings {
  /// This node's region; empty: no regions (every patient is held here).
  std::string self;
  /// The other regions' public API endpoints (host:port, TLS).
  std::map<std::string, std::string, std::less<>> endpoints;
  /// true: calls about a twin homed elsewhere are forwarded there; false:
  /// answered FAILED_PRECONDITION naming its home region (a redirect).
  bool forward = false;
  /// PEM CA that signed the other regions' API certificates (empty: the
  /// system's roots).
  std::string ca_file;
  /// How long a twin's home region found by asking is remembered.
  std::chrono::milliseconds remember_for{60'000};
  /// Most twins remembered; the memory is emptied when it is full.
  size_t max_remembered = 100'000;
};

}  // namespace healthtwin::services
