#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>

namespace healthtwin::actors {

/// Which shards may take writes on this node: those it owns (all of them on
/// a single node; `owns_shard` in a cluster, changing with hand-offs) and
/// that are not fenced for a hand-off in progress (docs/adr/0014).
/// Sequencer thread only.
class shard_fence {
public:
  shard_fence(uint32_t shards, std::function<bool(uint32_t)> owns_shard)
    : owns_shard_(std::move(owns_shard)), fenced_(shards, false) {}

  uint32_t shards() const { return static_cast<uint32_t>(fenced_.size()); }
  /// Whether this node is one of several, each owning some shards.
  bool clustered() const { return static_cast<bool>(owns_shard_); }
  bool owns(uint32_t shard) const { return !owns_shard_ || owns_shard_(shard); }
  uint32_t shard_of(std::string_view name) const;

  /// Whether work for `shard` may commit here: owned and not fenced.
  bool open(uint32_t shard) const { return !fenced_[shard] && owns(shard); }

  /// Why `shard` cannot take writes ("shard 7 is being handed to another
  /// member"); meaningful only when it is not open.
  std::string why_closed(uint32_t shard) const;

  /// caf::none when `name`'s shard is open, else `moving` with the reason
  /// (a registry command or clinician input: the caller retries; another
  /// member may own the shard by then).
  caf::error closed(std::string_view name) const;

  void fence(const std::vector<uint32_t>& shards) { set(shards, true); }
  void lift(const std::vector<uint32_t>& shards) { set(shards, false); }

  /// True for each shard of `of`, by shard number.
  std::vector<bool> mask(const std::vector<uint32_t>& of) const;

private:
  void set(const std::vector<uint32_t>& shards, bool fenced) {
    for (auto s : shards)
      fenced_[s] = fenced;
  }

  std::function<bool(uint32_t)> owns_shard_;
  std::vector<bool> fenced_;
};

}  // namespace healthtwin::actors
