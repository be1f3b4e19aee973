#pragma once

#include <cstdint>

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
}  // namespace prometheus

namespace healthtwin::mqtt {

struct bridge_stats;

/// The bridge's counts as Prometheus series (no device or patient labels):
///   healthtwin_mqtt_messages_total{outcome="stored|dead_lettered"}
///   healthtwin_mqtt_readings_stored_total
///   healthtwin_mqtt_duplicate_messages_total  (every reading already stored)
///   healthtwin_mqtt_states_reported_total
///   healthtwin_mqtt_retries_total
///   healthtwin_mqtt_broker_connections{state="connected|total"}
/// refresh() brings them up to date (before each scrape; one caller at a time).
class bridge_metrics {
public:
  bridge_metrics(prometheus::Registry& registry, const bridge_stats& stats);

  void refresh(uint64_t connections_up, uint64_t connections);

private:
  struct counter_view {
    prometheus::Counter* counter;
    uint64_t seen = 0;
  };
  void advance(counter_view& c, uint64_t now);

  const bridge_stats& stats_;
  counter_view stored_, dead_lettered_, readings_, duplicates_, states_, retries_;
  prometheus::Gauge* up_;
  prometheus::Gauge* total_;
};

}  // namespace healthtwin::mqtt
