#pragma once

#include <optional>

#include <prometheus/registry.h>

#include "actors/ingest/device_directory.hpp"
#include "actors/ingest/ingest_probe.hpp"
#include "actors/ingest/registry_rules.hpp"
#include "actors/ingest/shard_fence.hpp"
#include "tests/unit/storage/store_fixture.hpp"

namespace healthtwin::testing {

/// What the ingest sequencer's parts share, without the sequencer: a store,
/// its registry, the device directory, the shard fence and the probe.
/// `owned` decides which shards this node owns (all, unless a test narrows
/// it: a cluster member).
class ingest_parts_fixture : public store_fixture {
protected:
  void SetUp() override {
    store_fixture::SetUp();
    registry_.emplace(db());
    dir_.emplace(db(), *registry_);
    fence_.emplace(shards_, owns_);
  }

  /// Runs registry commands as one committed group; each must succeed.
  void registry(std::vector<actors::registry_command> commands) {
    actors::registry_rules rules{db(), *registry_, [](std::string_view) { return caf::error{}; }};
    for (auto& c : commands) {
      auto r = rules.run(c);
      ASSERT_FALSE(r.error) << storage::describe(r.error);
    }
    ASSERT_FALSE(db().write(rules.batch(), true));
  }

  static actors::registry_command patient(const std::string& name) {
    storage::patient_record p;
    p.name = name;
    p.ward = "ICU-1";
    return actors::create_patient{p};
  }
  static actors::registry_command device(const std::string& name) {
    storage::device_record d;
    d.name = name;
    return actors::create_device{d};
  }

  prometheus::Registry metrics_;
  actors::ingest_probe probe_{metrics_};
  std::function<bool(uint32_t)> owns_;  ///< set before SetUp for a cluster member
  std::optional<storage::registry> registry_;
  std::optional<actors::device_directory> dir_;
  std::optional<actors::shard_fence> fence_;
};

}  // namespace healthtwin::testing
