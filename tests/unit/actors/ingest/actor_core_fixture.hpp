#pragma once

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include <caf/all.hpp>
#include <prometheus/registry.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/shard/shard.hpp"
#include "tests/unit/storage/store_fixture.hpp"

namespace healthtwin::testing {

/// The actor core of a node in one process: store, actor system, alert hub,
/// shards and ingest sequencer. restart() stops it cleanly and starts it
/// again on the same data directory.
class actor_core_fixture : public store_fixture {
protected:
  void SetUp() override {
    store_fixture::SetUp();
    start();
  }

  void TearDown() override { stop(); }

  void start() {
    cfg_ = std::make_unique<caf::actor_system_config>();
    cfg_->set("scheduler.policy", caf::atom("sharing"));
    cfg_->set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(*cfg_);
    metrics_ = std::make_unique<prometheus::Registry>();
    hub_ = actors::spawn_alert_hub(*sys_, hub_settings_, db(), *metrics_);
    ctx_.store = &db();
    ctx_.alert_hub = hub_;
    ctx_.flow = &flow_;
    ctx_.counters = &counters_;
    shards_ = actors::spawn_shards(*sys_, shards_count(), ctx_, *metrics_);
    seq_ = std::make_unique<actors::ingest_sequencer>(settings_, db(), shards_, flow_, *metrics_);
    auto err = seq_->recover();
    ASSERT_FALSE(err) << storage::describe(err);
    seq_->start();
  }

  void stop() {
    if (!sys_)
      return;
    seq_->stop();
    seq_.reset();
    for (auto& s : shards_)
      caf::anon_send(s, actors::shutdown_atom::value);
    shards_.clear();
    caf::anon_send_exit(hub_, caf::exit_reason::user_shutdown);
    hub_ = actors::alert_hub_actor{};
    ctx_.alert_hub = nullptr;
    sys_.reset();
    cfg_.reset();
  }

  void restart() {
    stop();
    reopen();
    start();
  }

  uint32_t shards_count() const { return store_fixture::shards_; }

  // -- helpers -----------------------------------------------------------------

  actors::registry_result registry(actors::registry_command cmd) {
    std::promise<actors::registry_result> p;
    auto f = p.get_future();
    seq_->submit(std::move(cmd), [&](actors::registry_result&& r) { p.set_value(std::move(r)); });
    return f.get();
  }

  void add_patient(const std::string& name, const std::string& ward = "ICU-1") {
    storage::patient_record p;
    p.name = name;
    p.ward = ward;
    p.bed = "1";
    auto r = registry(actors::create_patient{p});
    ASSERT_FALSE(r.error) << to_string(r.error);
  }

  void add_device(const std::string& name, const std::string& patient = {},
                  models::device_type type = models::device_type::bedside_monitor) {
    storage::device_record d;
    d.name = name;
    d.type = type;
    auto r = registry(actors::create_device{d});
    ASSERT_FALSE(r.error) << to_string(r.error);
    if (!patient.empty()) {
      auto a = registry(actors::assign_device{name, patient});
      ASSERT_FALSE(a.error) << to_string(a.error);
    }
  }

  /// Submits one group and waits for the ack and for twins to apply it.
  actors::ingest_result ingest(const std::string& device,
                               std::vector<actors::ingest_reading> readings) {
    actors::ingest_group g;
    g.device = device;
    uint32_t i = 0;
    for (auto& r : readings)
      r.index = i++;
    g.readings = std::move(readings);
    std::promise<actors::ingest_result> p;
    auto f = p.get_future();
    auto n = g.readings.size();
    std::vector<actors::ingest_group> groups;
    groups.push_back(std::move(g));
    seq_->submit(std::move(groups), n, [&](actors::ingest_result&& r) { p.set_value(std::move(r)); });
    auto r = f.get();
    drain();
    return r;
  }

  void drain() {
    while (flow_.pending.load() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  template <class View, class Atom>
  View view(Atom atom, const std::string& name) {
    caf::scoped_actor self{*sys_};
    auto s = shards_[models::shard_of(name, shards_count())];
    View out;
    self->request(s, std::chrono::seconds(5), atom, name)
        .receive([&](View& v) { out = std::move(v); },
                 [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return out;
  }

  actors::patient_view patient(const std::string& name) {
    return view<actors::patient_view>(actors::patient_view_atom::value, name);
  }
  actors::device_view device(const std::string& name) {
    return view<actors::device_view>(actors::device_view_atom::value, name);
  }

  std::vector<actors::alert_record> alerts(const std::string& tenant) {
    caf::scoped_actor self{*sys_};
    std::vector<actors::alert_record> out;
    actors::alert_filter f;
    f.tenant = tenant;
    self->request(hub_, std::chrono::seconds(5), actors::alert_list_atom::value, f, true)
        .receive([&](std::vector<actors::alert_record>& v) { out = std::move(v); },
                 [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return out;
  }

  /// The hub's clock is the test's (clock_ms_); escalation runs only when a
  /// test sends the check.
  std::atomic<int64_t> clock_ms_{1'000'000};
  actors::alert_hub_settings hub_settings_{1000, 120'000, models::priority::high, 0,
                                           [this] { return clock_ms_.load(); }, nullptr, {}};
  actors::ingest_settings settings_;
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<prometheus::Registry> metrics_;
  actors::ingest_flow flow_;
  actors::twin_counters counters_;
  actors::twin_context ctx_;
  actors::alert_hub_actor hub_;
  std::vector<actors::shard_actor> shards_;
  std::unique_ptr<actors::ingest_sequencer> seq_;
};

}  // namespace healthtwin::testing
