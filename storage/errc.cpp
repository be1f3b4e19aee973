#include "storage/errc.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/message.hpp>

namespace healthtwin::storage {

std::string to_string(errc x) {
  switch (x) {
    case errc::io_error: return "io_error";
    case errc::no_space: return "no_space";
    case errc::corruption: return "corruption";
    case errc::incompatible: return "incompatible";
    case errc::invalid_record: return "invalid_record";
    case errc::invalid_settings: return "invalid_settings";
    case errc::erased: return "erased";
    case errc::no_quorum: return "no_quorum";
  }
  return "unknown";
}

std::string describe(const caf::error& e) {
  if (!e)
    return "ok";
  std::string out;
  if (e.category() == caf::atom("storage"))
    out = "storage " + to_string(static_cast<errc>(e.code()));
  else
    out = caf::to_string(e);
  if (e.category() == caf::atom("storage") && !e.context().empty() &&
      e.context().match_elements<std::string>())
    out += ": " + e.context().get_as<std::string>(0);
  return out;
}

void register_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(caf::atom("storage"),
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           return "storage_error(" + to_string(static_cast<errc>(code)) +
                                  (ctx.empty() ? "" : ", " + caf::to_string(ctx)) + ")";
                         });
}

}  // namespace healthtwin::storage
