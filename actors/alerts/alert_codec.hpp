#pragma once

#include <string>
#include <string_view>

#include "actors/alerts/alert_hub.hpp"

namespace healthtwin::actors {

// The persisted form of a silence (alert records and events: alert_hub.hpp).
std::string serialize(const alert_silence& s);
bool parse(std::string_view bytes, alert_silence& out);

/// A silence's key in the alert table: its metric's name, empty for the
/// whole patient.
std::string_view silence_key(models::metric m);

}  // namespace healthtwin::actors
