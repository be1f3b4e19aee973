#pragma once
// Private to storage/: per-patient data keys (crypto-shredding).

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <caf/expected.hpp>

#include "storage/node_key.hpp"

namespace healthtwin::storage {

class store;
class write_batch;

/// Each patient's clinical values (snapshots, series chunks, alert records
/// and events) are sealed with AES-256-GCM under the patient's own data
/// key. The key is random, stored wrapped (AES-256-GCM under a key derived
/// from the node key) in the `keys` column family, and destroyed when the
/// patient is erased: every copy of the patient's values left anywhere —
/// older table files, the WAL, backups — is unreadable from that moment,
/// before compaction reclaims the bytes.
///
/// Sealed value: 0x01 | key ref (8) | nonce (12) | ciphertext | tag (16);
/// the key ref is authenticated data, so a value cannot be moved to
/// another patient's key. Key refs are random and carry no identifier.
///
/// Without a node key (a plaintext directory, development only) values are
/// stored as they are and erasure relies on deletion and compaction alone;
/// erasure markers and pseudonyms still work.
///
/// Thread-safe. Keys are cached in memory after first use.
class patient_keys {
public:
  /// `pseudonym_key` keys pseudonym() (store::open chooses it).
  patient_keys(store& s, const std::optional<node_key>& key, const node_key::bytes& pseudonym_key);
  ~patient_keys();

  /// Seals `plain` under the patient's key, creating (and durably storing)
  /// the key on first use. Fails with errc::erased for an erased patient.
  caf::expected<std::string> seal(std::string_view patient, std::string_view plain);

  /// Adds a new key for the patient to `batch` (registration): the key is
  /// durable with the registry record, so sealing never waits for a key
  /// write. Nothing when the directory is not encrypted.
  caf::error add_key(write_batch& batch, std::string_view patient);

  /// Opens a sealed value. errc::erased when its key was destroyed;
  /// errc::invalid_record when it was altered.
  caf::expected<std::string> unseal(std::string_view sealed);

  /// Destroys the patient's key (synced) and remembers the erasure, so the
  /// patient's key is never recreated. The wrapped key's bytes leave the
  /// files with purge_erased() (storage/erasure.hpp).
  caf::error destroy(std::string_view patient);

  /// Whether the patient was erased.
  bool erased(std::string_view patient);

  /// A keyed hash of the patient's name (16 hex digits): names the patient
  /// in the erasure markers and the audit log without revealing who it is.
  std::string pseudonym(std::string_view patient) const;

private:
  using key_bytes = node_key::bytes;
  using key_ref = std::array<uint8_t, 8>;

  caf::error new_key(write_batch& batch, std::string_view patient, key_ref& ref, key_bytes& key);
  caf::expected<std::optional<key_ref>> find_ref(std::string_view patient);
  caf::expected<std::optional<key_bytes>> find_key(const key_ref& ref);

  store& store_;
  bool sealing_;
  key_bytes wrap_key_{};
  hmac_sha256_key pseudonym_mac_;
  std::shared_mutex mtx_;
  std::unordered_map<std::string, key_ref> refs_;     // patient -> its key ref
  std::unordered_map<std::string, key_bytes> keys_;   // key ref (8 bytes) -> data key
  std::mutex create_mtx_;                             // one creator at a time
};

}  // namespace healthtwin::storage
