#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

namespace healthtwin::storage {

/// The node's master key (256 bits), read from a key file. It never leaves
/// the process and is never logged; every key the store uses is derived
/// from it for one purpose (file encryption, wrapping patient data keys),
/// so no two purposes share key material.
class node_key {
public:
  using bytes = std::array<uint8_t, 32>;

  /// Reads a key file: 64 hexadecimal digits, optionally followed by a
  /// newline. Refused (errc::invalid_settings, naming the file) when the
  /// file is missing, malformed, or readable by group or others.
  static caf::expected<node_key> load(const std::string& path);

  /// A key from raw bytes (tests, tools).
  static node_key from_bytes(const bytes& raw);

  node_key(const node_key&) = default;
  node_key& operator=(const node_key&) = default;
  ~node_key();

  /// HMAC-SHA256(master, label): a 256-bit key for one purpose.
  bytes derive(std::string_view label) const;

  /// A public fingerprint (16 hex digits) that tells keys apart without
  /// revealing them; stored in every encrypted file's header.
  std::string id() const;

private:
  node_key() = default;
  bytes master_{};
};

/// HMAC-SHA256(key, data).
node_key::bytes hmac_sha256(const node_key::bytes& key, std::string_view data);

/// HMAC-SHA256 under one key, prepared once: a call copies the keyed state
/// instead of fetching the algorithm and hashing the key again (a third of
/// hmac_sha256's time; patients' pseudonyms are computed for every sealed
/// write and erasure check). Safe to call from several threads.
class hmac_sha256_key {
public:
  explicit hmac_sha256_key(const node_key::bytes& key);
  hmac_sha256_key(const hmac_sha256_key&) = delete;
  hmac_sha256_key& operator=(const hmac_sha256_key&) = delete;
  ~hmac_sha256_key();

  node_key::bytes operator()(std::string_view data) const;

private:
  struct keyed;  // OpenSSL's prepared MAC context
  keyed* keyed_ = nullptr;
  node_key::bytes key_{};  // for the one-shot path, when OpenSSL cannot copy the state
};

/// The first 8 bytes of `digest` as 16 hex digits: fingerprints and
/// pseudonyms that tell things apart without revealing them.
std::string short_hex(const node_key::bytes& digest);

}  // namespace healthtwin::storage
