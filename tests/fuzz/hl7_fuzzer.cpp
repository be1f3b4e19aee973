// libFuzzer target: the HL7 v2 reader of the MLLP gateway (issue 22). The
// input is one message as a sender frames it. Whatever it holds: no crash,
// every refusal names where and stays short, and the ACK built for it
// parses back and names the message's own control id.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "services/hl7/ack.hpp"
#include "services/hl7/hl7_message.hpp"
#include "services/hl7/pcd01.hpp"

using namespace healthtwin::hl7;

namespace {

void check_error(const error& why) {
  if (why.what.empty() || why.what.size() > 400)
    std::abort();
}

void check_ack(const std::string& ack, const header* h) {
  error why;
  auto m = message::parse(ack, why);
  if (!m)
    std::abort();
  bool seen = false;
  for (auto& s : m->segments())
    if (s.id() == "MSA") {
      seen = true;
      if (h && m->value(s, 2) != h->control_id)
        std::abort();
    }
  if (!seen)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  error why;
  auto m = message::parse(text, why);
  responder us;
  if (!m) {
    check_error(why);
    check_ack(make_ack(nullptr, us, ack_code::reject, {{why.where, err_code::data_type, why.what}}, "A", 0), nullptr);
    return 0;
  }
  auto h = read_header(*m, why);
  if (!h) {
    check_error(why);
    return 0;
  }
  auto content = read_pcd01(*m, why);
  if (!content) {
    check_error(why);
    check_ack(make_ack(&*h, us, ack_code::error, {{why.where, err_code::data_type, why.what}}, "A", 0), &*h);
    return 0;
  }
  for (auto& o : content->observations)
    if (o.device.empty() || o.device.size() > 63 || o.where.segment != "OBX")
      std::abort();
  check_ack(make_ack(&*h, us, ack_code::accept, {}, "A", 0), &*h);
  return 0;
}
