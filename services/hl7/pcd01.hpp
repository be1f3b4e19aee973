#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/models/metric.hpp"
#include "services/hl7/hl7_message.hpp"

namespace healthtwin::hl7 {

/// The header facts every inbound message is acknowledged with.
struct header {
  std::string sending_application;  ///< MSH-3
  std::string sending_facility;     ///< MSH-4
  std::string receiving_application;  ///< MSH-5
  std::string receiving_facility;     ///< MSH-6
  std::string message_type;         ///< MSH-9.1 (ORU, ADT, ...)
  std::string trigger_event;        ///< MSH-9.2 (R01, A01, ...)
  std::string control_id;           ///< MSH-10
  std::string processing_id;        ///< MSH-11.1
  std::string version;              ///< MSH-12.1
};

/// Reads the MSH facts; an error names the field (MSH-9, MSH-10, MSH-12).
std::optional<header> read_header(const message& m, error& why);

/// One numeric observation for the ingest API.
struct observation {
  std::string device;  ///< device id (OBX-18.1, lower-cased; a valid twin id)
  int64_t time_ms = 0;  ///< OBX-14, else OBR-7, else MSH-7
  models::metric metric{};
  double value = 0;  ///< in the metric's unit
  models::reading_quality quality = models::reading_quality::unspecified;
  location where;  ///< its OBX, for a rejection
};

/// What an ORU^R01 (IHE PCD-01) carries for us.
struct pcd01_content {
  std::vector<observation> observations;
  size_t not_mapped = 0;  ///< numeric OBX rows of codes we do not chart
};

/// Maps an ORU^R01 per IHE PCD-01: OBX-3 MDC codes and OBX-6 units
/// (MDC or UCUM) to metrics (docs/hl7.md has the table), OBX-11 to a
/// reading quality (F, C valid; R, P unvalidated; X no signal; N, D, W
/// invalid), OBX-18 (or the nearest one above it in the same OBR group,
/// the device hierarchy of PCD-01) to the device. nullopt with `why` naming
/// the segment and field when any observation we would chart is malformed:
/// a message is taken whole or not at all.
std::optional<pcd01_content> read_pcd01(const message& m, error& why);

/// Parses an HL7 TS/DTM value (YYYYMMDDHHMM[SS[.S{1,4}]][+/-ZZZZ]) to Unix
/// ms; without an offset the time is UTC. nullopt when malformed.
std::optional<int64_t> parse_hl7_time(std::string_view ts);

/// The HL7 DTM of `ms` in UTC with seconds: YYYYMMDDHHMMSS+0000.
std::string format_hl7_time(int64_t ms);

}  // namespace healthtwin::hl7
