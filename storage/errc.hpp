#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace healthtwin::storage {

/// Errors of the storage module (category atom "storage").
enum class errc : uint8_t {
  io_error = 1,        ///< the disk or file system failed; retry later
  no_space,            ///< the disk is full; nothing was written
  corruption,          ///< a file or record is damaged; the node must not start
  incompatible,        ///< the data directory was written with other settings
  invalid_record,      ///< a stored record does not parse
  invalid_settings,    ///< bad store_settings (field named in the context)
  erased,              ///< the patient was erased; its data is gone for good
  no_quorum,           ///< a replicated write did not commit (no majority, or this replica does not lead); resend
};

std::string to_string(errc x);

}  // namespace healthtwin::storage

CAF_ERROR_CODE_ENUM(healthtwin::storage::errc, "storage")

namespace healthtwin::storage {

/// Renders any storage error with its context, for logs and status messages.
std::string describe(const caf::error& e);

/// Registers the renderer of storage errors on an actor system config.
void register_error_category(caf::actor_system_config& cfg);

}  // namespace healthtwin::storage
