#pragma once
// AES-256-GCM, the one authenticated cipher of HealthTwin's own records
// (patient values and keys, storage/patient_keys.hpp; Raft entries,
// services/peer/raft_group.hpp). RocksDB's files have their own
// (storage/file_encryption.hpp).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace healthtwin::storage::aead {

constexpr size_t key_len = 32;
constexpr size_t nonce_len = 12;
constexpr size_t tag_len = 16;

/// Appends the ciphertext of `plain` and its tag to `out`; false (and `out`
/// unchanged) when OpenSSL fails. `nonce` must never repeat under a key.
bool seal(const uint8_t* key, const uint8_t* nonce, std::string_view aad, std::string_view plain, std::string& out);

/// The plaintext of `sealed` (ciphertext followed by the tag), or nullopt
/// when it or the authenticated data was altered (or the key is another).
std::optional<std::string> open(const uint8_t* key, const uint8_t* nonce, std::string_view aad,
                                std::string_view sealed);

/// A fresh random nonce (RAND_bytes); false when the generator fails.
bool random_nonce(std::array<uint8_t, nonce_len>& nonce);

}  // namespace healthtwin::storage::aead
