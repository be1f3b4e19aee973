// Compiled by four CTest entries (tests/unit/CMakeLists.txt): with
// PROTOCOL_RIGHT it must compile; with PROTOCOL_WRONG_HUB, _SHARD or _TWIN
// it must not. The typed protocols of the alert hub, the shards and the
// twins have no (al_ack, std::string), no (series, std::string, uint8_t)
// and no (resolve, std::string, std::string, std::string) message — they
// carry alert_action, series_query and alert_action — so a message an
// actor does not handle is a compile error at the sender, not a dropped
// message at run time.

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

void ask_twin(caf::scoped_actor& self, const patient_twin_actor& twin) {
#ifdef PROTOCOL_WRONG_TWIN
  self->request(twin, std::chrono::seconds(1), resolve_atom::value, std::string{"a"},
                std::string{"nurse"}, std::string{})
      .receive([](alert_record&) {}, [](caf::error&) {});
#else
  self->request(twin, std::chrono::seconds(1), resolve_atom::value, alert_action{"a", "nurse", ""})
      .receive([](alert_record&) {}, [](caf::error&) {});
#endif
}

}  // namespace healthtwin::actors
