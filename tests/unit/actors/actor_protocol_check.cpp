// Compiled by three CTest entries (tests/unit/CMakeLists.txt): with
// PROTOCOL_RIGHT it must compile; with PROTOCOL_WRONG_HUB or
// PROTOCOL_WRONG_SHARD it must not. The alert hub's and the shards' typed
// protocols have no (al_ack, std::string) and no (series, std::string,
// uint8_t) message — they carry alert_action and series_query — so a
// message an actor does not handle is a compile error at the sender, not a
// dropped message at run time.

#include <string>

#include <caf/all.hpp>

#include "actors/alerts/alert_hub.hpp"
#include "actors/shard/shard.hpp"

namespace healthtwin::actors {

void send_to_hub(caf::scoped_actor& self, const alert_hub_actor& hub) {
#ifdef PROTOCOL_WRONG_HUB
  self->send(hub, alert_ack_atom::value, std::string{"tenants/h1/patients/p/alerts/1"});
#else
  self->send(hub, alert_ack_atom::value, alert_action{"tenants/h1/patients/p/alerts/1", "nurse", ""});
#endif
}

void ask_shard(caf::scoped_actor& self, const shard_actor& shard) {
#ifdef PROTOCOL_WRONG_SHARD
  self->request(shard, std::chrono::seconds(1), series_atom::value, std::string{"p"}, uint8_t{1})
      .receive([](series_cursor&) {}, [](caf::error&) {});
#else
  self->request(shard, std::chrono::seconds(1), series_atom::value, series_query{"p", 1})
      .receive([](series_cursor&) {}, [](caf::error&) {});
#endif
}

}  // namespace healthtwin::actors
