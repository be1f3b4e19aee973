#pragma once
// What a node must undo, in the reverse of the order it started: each
// phase that starts something pushes the action that stops it; any exit
// (a failed phase, a stop signal, an exception) unwinds them last first.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace healthtwin::node {

class stop_stack {
public:
  stop_stack() = default;
  stop_stack(const stop_stack&) = delete;
  stop_stack& operator=(const stop_stack&) = delete;
  ~stop_stack() { unwind(); }

  /// `stop` runs at unwind(), before every action pushed earlier.
  void push(std::string name, std::function<void()> stop) {
    stops_.emplace_back(std::move(name), std::move(stop));
  }

  /// Runs every action, last pushed first, once; an action that throws is
  /// logged and the others still run.
  void unwind() noexcept {
    while (!stops_.empty()) {
      auto [name, stop] = std::move(stops_.back());
      stops_.pop_back();
      spdlog::debug("stopping: {}", name);
      try {
        stop();
      } catch (const std::exception& e) {
        spdlog::error("stopping {} failed: {}", name, e.what());
      } catch (...) {
        spdlog::error("stopping {} failed", name);
      }
    }
  }

  size_t size() const noexcept { return stops_.size(); }

private:
  std::vector<std::pair<std::string, std::function<void()>>> stops_;
};

}  // namespace healthtwin::node
