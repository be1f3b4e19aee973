#pragma once
// Private to services/grpc: the pages of TwinService.ListPatientTwins. A
// page token holds the last patient listed with the summary it was ordered
// by (and the query's fingerprint): the next page starts right after it in
// the order, so patients whose summaries change between pages neither
// shift others into a repeat or a gap (as offsets did) nor appear twice.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/index/twin_query.hpp"
#include "healthtwin/internal/peer.pb.h"

namespace healthtwin::services {

using summary_row = std::pair<std::string, actors::patient_summary>;

/// The token of the page after `last`, for the query fingerprinted `query`.
std::string page_token(uint64_t query, const summary_row& last);

/// The last row of the page before, from a token this service issued for
/// the same query; nullopt for anything else.
std::optional<summary_row> parse_page_token(const std::string& token, uint64_t query);

/// A row as PeerService.ListPatientSummaries carries it, and back.
internal::PatientSummary to_peer(const summary_row& row);
summary_row from_peer(const internal::PatientSummary& p);

/// Drops the rows of `sorted` (in `order`) up to `cursor`, itself included.
void drop_through(std::vector<summary_row>& sorted, const summary_row& cursor, const actors::twin_order& order);

}  // namespace healthtwin::services
