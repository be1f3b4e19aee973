#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "actors/models/twin_name.hpp"

namespace healthtwin::storage {

/// Byte layout of every RocksDB key. Integers are big-endian so keys sort in
/// numeric order; twin data starts with the twin's shard (2 bytes) so one
/// shard's data is one key range (hand-off, erasure, retention).
///
///   log       position(8)
///   registry  shard(2) kind(1) name
///   twins     shard(2) kind(1) name                   snapshot (kind 'd' / 'p')
///             shard(2) 'w' name                        device sequence window, or a
///                                                      patient part's (part_window_name)
///   series    shard(2) patient 0x00 metric(1) chunk_no(4)
///   alerts    'a' shard(2) patient 0x00 alert_id      alert record
///             'x' shard(2) patient 0x00 alert_id      present while active
///             's' shard(2) patient 0x00 metric        silence (metric name, "" = all)
///             'e' sequence(8)                          alert event log
///   default   "meta", "checkpoint"
namespace key_codec {

void put_u16(std::string& out, uint16_t v);
void put_u32(std::string& out, uint32_t v);
void put_u64(std::string& out, uint64_t v);
uint64_t get_u64(std::string_view in) noexcept;  ///< first 8 bytes; 0 if shorter
uint32_t get_u32(std::string_view in) noexcept;  ///< first 4 bytes; 0 if shorter

std::string log_key(uint64_t position);
std::string twin_key(uint32_t shard, models::twin_kind kind, std::string_view name);
/// Key of a device's sequence window (written by the ingest sequencer).
std::string window_key(uint32_t shard, std::string_view device);
/// Name of the window of one patient's parts from one device, kept by the
/// patient's owner in a cluster: "part:{patient}|{device}". With an empty
/// device: the prefix of every part window of the patient.
std::string part_window_name(std::string_view patient, std::string_view device);
/// The shard whose key range holds window `name`: its device's, or for a
/// part window its patient's.
uint32_t window_shard(std::string_view name, uint32_t shards);
/// Prefix of every series chunk of a patient (all metrics).
std::string series_patient_prefix(uint32_t shard, std::string_view patient);
/// Prefix of every series chunk of one metric of a patient.
std::string series_prefix(uint32_t shard, std::string_view patient, uint8_t metric);
std::string series_key(uint32_t shard, std::string_view patient, uint8_t metric,
                       uint32_t chunk_no);
std::string alert_key(char kind, uint32_t shard, std::string_view patient,
                      std::string_view alert_id);
std::string alert_event_key(uint64_t sequence);

}  // namespace key_codec

}  // namespace healthtwin::storage
