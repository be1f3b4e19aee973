#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>

#include "actors/twin/twin.hpp"

namespace healthtwin::internal {
class LogRecord;
}

namespace healthtwin::actors {

/// The ingest log's record format (internal::LogRecord, ADR 0002): one
/// record per group commit, an entry per device (or patient-only part,
/// clinician input, sequence reset) with its readings as parallel arrays.
/// Quality is written only when some reading of an entry has one (records
/// from before quality existed read as unspecified).
std::string encode_log_record(const committed_batch& batch);

/// Decodes the record at log position `position` into `out` (position,
/// receive time, entries). `scratch` is parsed into and reused across calls
/// (its arrays keep their capacity). Readings of a metric this build does
/// not know are skipped. A record that does not parse, has arrays of
/// different lengths or invalid patient settings is corruption, naming the
/// position.
caf::error decode_log_record(uint64_t position, std::string_view bytes, internal::LogRecord& scratch,
                             committed_batch& out);

}  // namespace healthtwin::actors
