#include "services/mqtt/bridge_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "services/mqtt/telemetry_bridge.hpp"

namespace healthtwin::mqtt {

namespace {

prometheus::Counter* counter(prometheus::Registry& r, const char* name, const char* help,
                             const std::map<std::string, std::string>& labels = {}) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

}  // namespace

bridge_metrics::bridge_metrics(prometheus::Registry& r, const bridge_stats& stats)
    : stats_(stats),
      stored_{counter(r, "healthtwin_mqtt_messages_total", "MQTT messages handled, by outcome",
                      {{"outcome", "stored"}})},
      dead_lettered_{counter(r, "healthtwin_mqtt_messages_total", "MQTT messages handled, by outcome",
                             {{"outcome", "dead_lettered"}})},
      readings_{counter(r, "healthtwin_mqtt_readings_stored_total", "readings the node newly stored")},
      duplicates_{counter(r, "healthtwin_mqtt_duplicate_messages_total",
                          "messages delivered again whose readings were all stored before")},
      states_{counter(r, "healthtwin_mqtt_states_reported_total", "reported device states recorded")},
      retries_{counter(r, "healthtwin_mqtt_retries_total", "retries while the node or broker could not take a batch")} {
  auto& g = prometheus::BuildGauge()
                .Name("healthtwin_mqtt_broker_connections")
                .Help("subscriber connections to the broker")
                .Register(r);
  up_ = &g.Add({{"state", "connected"}});
  total_ = &g.Add({{"state", "total"}});
}

void bridge_metrics::advance(counter_view& c, uint64_t now) {
  if (now > c.seen) {
    c.counter->Increment(static_cast<double>(now - c.seen));
    c.seen = now;
  }
}

void bridge_metrics::refresh(uint64_t connections_up, uint64_t connections) {
  advance(stored_, stats_.stored.load());
  advance(dead_lettered_, stats_.dead_lettered.load());
  advance(readings_, stats_.readings.load());
  advance(duplicates_, stats_.duplicates.load());
  advance(states_, stats_.states.load());
  advance(retries_, stats_.retries.load());
  up_->Set(static_cast<double>(connections_up));
  total_->Set(static_cast<double>(connections));
}

}  // namespace healthtwin::mqtt
