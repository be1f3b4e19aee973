#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "storage/store.hpp"

namespace healthtwin::storage {

/// Names of the files under `settings.data_dir` whose contents contain
/// `needle`: as stored, and — for files of an encrypted directory —
/// decrypted with the node key, so holding the key does not find it
/// either. Evidence for an erasure (`twinctl scan`); reads the files
/// directly, so it also works on a copy or with the node stopped.
caf::expected<std::vector<std::string>> files_containing(const store_settings& settings,
                                                         std::string_view needle);

}  // namespace healthtwin::storage
