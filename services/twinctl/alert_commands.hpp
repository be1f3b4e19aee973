#pragma once
// twinctl's alert commands: they call a running node's AlertService.

#include <string>

#include "services/grpc/client_channel.hpp"

namespace healthtwin::twinctl {

/// What `twinctl alerts burden` asks for.
struct burden_query {
  std::string tenant;
  std::string ward;     ///< empty: every ward
  std::string patient;  ///< patient id; empty: every patient
  double hours = 24;    ///< the window, ending now
  int top = 10;
  bool json = false;    ///< the AlarmBurden message as JSON instead of tables
};

/// `twinctl alerts burden`: AlertService.GetAlarmBurden, printed as tables
/// (per ward and in total; kinds and priorities; the noisiest patients and
/// devices) or as JSON. Exit codes as api_commands.hpp says.
int print_alarm_burden(const services::channel_settings& node, const burden_query& q);

}  // namespace healthtwin::twinctl
