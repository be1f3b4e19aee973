#include "services/hl7/ack.hpp"

#include "actors/models/quoted.hpp"

namespace healthtwin::hl7 {

namespace {

constexpr size_t max_error_text = 200;

std::string_view code_text(err_code c) {
  switch (c) {
    case err_code::segment_sequence: return "Segment sequence error";
    case err_code::required_field_missing: return "Required field missing";
    case err_code::data_type: return "Data type error";
    case err_code::table_value_not_found: return "Table value not found";
    case err_code::unsupported_message_type: return "Unsupported message type";
    case err_code::unsupported_event: return "Unsupported event code";
    case err_code::unsupported_processing_id: return "Unsupported processing id";
    case err_code::unsupported_version: return "Unsupported version id";
    case err_code::unknown_key: return "Unknown key identifier";
    case err_code::duplicate_key: return "Duplicate key identifier";
    case err_code::internal: return "Application internal error";
  }
  return "Application internal error";
}

}  // namespace

std::string make_ack(const header* original, const responder& us, ack_code code, const std::vector<ack_error>& errors,
                     const std::string& control_id, int64_t now_ms) {
  delimiters d;  // an ACK uses the standard delimiters
  auto esc = [&](std::string_view s) { return escape(models::bounded(s, max_error_text), d); };
  std::string out = "MSH|^~\\&|" + esc(us.application) + "|" + esc(us.facility) + "|";
  if (original)
    out += esc(original->sending_application) + "|" + esc(original->sending_facility);
  else
    out += "|";
  out += "|" + format_hl7_time(now_ms) + "||ACK";
  if (original && !original->trigger_event.empty())
    out += "^" + esc(original->trigger_event);
  out += "^ACK|" + esc(control_id) + "|P|";
  out += original && !original->version.empty() ? esc(original->version) : std::string{"2.6"};
  out += "\r";
  out += std::string{"MSA|"} + (code == ack_code::accept ? "AA" : code == ack_code::error ? "AE" : "AR") + "|" +
         (original ? esc(original->control_id) : std::string{}) + "\r";
  for (auto& e : errors) {
    // ERR-2 location (segment^occurrence^field^repetition^component),
    // ERR-3 code^text^HL70357, ERR-4 severity, ERR-8 the message for people.
    out += "ERR||";
    if (e.where) {
      out += esc(e.where->segment) + "^" + std::to_string(e.where->occurrence);
      if (e.where->field > 0)
        out += "^" + std::to_string(e.where->field) + "^1";
      if (e.where->component > 0)
        out += "^" + std::to_string(e.where->component);
    }
    out += "|" + std::to_string(static_cast<int>(e.code)) + "^" + std::string{code_text(e.code)} + "^HL70357|E||||" +
           esc(e.text) + "\r";
  }
  return out;
}

}  // namespace healthtwin::hl7
