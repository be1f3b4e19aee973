#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "services/hl7/hl7_message.hpp"
#include "services/hl7/pcd01.hpp"

namespace healthtwin::hl7 {

/// MSA-1: accepted, error (not stored: correct and resend), rejected (not
/// stored: this message will never be taken; do not resend it unchanged).
enum class ack_code { accept, error, reject };

/// HL7 table 0357 codes used in ERR-3.
enum class err_code : int {
  segment_sequence = 100,
  required_field_missing = 101,
  data_type = 102,
  table_value_not_found = 103,
  unsupported_message_type = 200,
  unsupported_event = 201,
  unsupported_processing_id = 202,
  unsupported_version = 203,
  unknown_key = 204,
  duplicate_key = 205,
  internal = 207,
};

/// One ERR segment: where, what (code), and a message for people.
struct ack_error {
  std::optional<location> where;
  err_code code = err_code::internal;
  std::string text;  ///< bounded before it is sent
};

/// Our own name in MSH-3/MSH-4 of ACKs.
struct responder {
  std::string application = "HEALTHTWIN";
  std::string facility;
};

/// An ACK to `original` (MSA-2 = its MSH-10, MSH-5/6 = its MSH-3/4,
/// the event of its MSH-9), with an ERR segment per error. `original` may
/// be null for a message whose MSH could not be read: MSA-2 is then empty.
/// `control_id` is the ACK's own MSH-10.
std::string make_ack(const header* original, const responder& us, ack_code code, const std::vector<ack_error>& errors,
                     const std::string& control_id, int64_t now_ms);

}  // namespace healthtwin::hl7
