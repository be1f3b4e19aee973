#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include <grpcpp/support/status.h>

#include "healthtwin/v1/ingest.pb.h"
#include "services/hl7/ack.hpp"
#include "services/hl7/adt.hpp"
#include "storage/message_journal.hpp"

namespace healthtwin::hl7 {

struct gateway_settings {
  std::string tenant;  ///< devices are tenants/{tenant}/devices/{OBX-18}
  responder us;
  /// MSH-11 processing ids taken (P production; add T for a test feed).
  std::string processing_ids = "P";
};

/// Counts by outcome (no patient data).
struct gateway_stats {
  std::atomic<uint64_t> accepted{0}, resent{0}, errors{0}, rejected{0};
};

/// Turns inbound HL7 v2 messages into ingest calls and answers each with
/// its ACK — AA only after the node stored every reading durably. An
/// ORU^R01 (IHE PCD-01) is read whole (docs/hl7.md), an ADT A01/A02/A03/A08 moves
/// patients and their beds' devices; its readings get
/// sequence numbers from the message journal before they are sent, so a
/// resend (same sender and MSH-10) carries the same numbers and is never
/// stored twice; a resend whose content differs is refused. Thread-safe:
/// called from the MLLP listener's workers.
class hl7_gateway {
public:
  using ingest_fn = std::function<grpc::Status(const v1::IngestRequest&, v1::IngestResponse&)>;

  /// `adt`: how ADT events change the registry; null: ADT messages are
  /// refused (AR).
  hl7_gateway(gateway_settings s, storage::message_journal& journal, ingest_fn ingest, adt_handler* adt = nullptr);

  /// The ACK to one message (blocking: the journal's sync and the ingest call).
  std::string handle(std::string text);

  /// The AR to a message over `limit` bytes, from its first bytes.
  std::string too_large(std::string prefix, size_t limit);

  const gateway_stats& stats() const noexcept { return stats_; }

private:
  std::string ack(const header* h, ack_code code, std::vector<ack_error> errors);
  std::string handle_oru(const message& m, const header& h);
  std::string handle_adt(const message& m, const header& h);
  /// The de-duplication key of a message (sender and MSH-10), held while
  /// the message is handled here: one at a time per key, so a resend racing
  /// its original waits its turn. Not held: being handled elsewhere.
  class key_claim {
  public:
    key_claim(hl7_gateway& g, const header& h);
    ~key_claim();
    key_claim(const key_claim&) = delete;
    key_claim& operator=(const key_claim&) = delete;
    bool held() const noexcept { return held_; }
    const std::string& key() const noexcept { return key_; }

  private:
    hl7_gateway& g_;
    std::string key_;
    bool held_;
  };
  /// The AE for a message whose key another connection holds.
  std::string busy(const message& m, const header& h);

  gateway_settings s_;
  storage::message_journal& journal_;
  ingest_fn ingest_;
  adt_handler* adt_;
  gateway_stats stats_;
  std::atomic<uint64_t> next_ack_{1};
  std::mutex busy_mtx_;
  std::set<std::string> busy_;  // message keys being handled now
};

}  // namespace healthtwin::hl7
