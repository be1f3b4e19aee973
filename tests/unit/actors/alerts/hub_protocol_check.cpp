// Compiled by two CTest entries (tests/unit/CMakeLists.txt): with
// HUB_PROTOCOL_RIGHT it must compile; without it, it must not, because the
// alert hub's typed protocol has no (al_ack, std::string) message — an
// acknowledgement carries an alert_action. So a message the hub does not
// handle is a compile error at the sender, not a dropped message at run time.

#include <string>

#include <caf/all.hpp>

#include "actors/alerts/alert_hub.hpp"

namespace healthtwin::actors {

void send_to_hub(caf::scoped_actor& self, const alert_hub_actor& hub) {
#ifdef HUB_PROTOCOL_RIGHT
  self->send(hub, alert_ack_atom::value, alert_action{"tenants/h1/patients/p/alerts/1", "nurse", ""});
#else
  self->send(hub, alert_ack_atom::value, std::string{"tenants/h1/patients/p/alerts/1"});
#endif
}

}  // namespace healthtwin::actors
