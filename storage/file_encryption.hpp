#pragma once
// Private to storage/: encryption at rest for every RocksDB file.

#include <memory>
#include <optional>
#include <string>

#include <rocksdb/env.h>

#include "storage/node_key.hpp"

namespace healthtwin::storage {

/// An Env whose files (SST, WAL, MANIFEST, OPTIONS, info LOG) are encrypted
/// with AES-256-CTR under a key derived from the node key. Each file starts
/// with a 4 KiB header: a marker, the key fingerprint and a random 128-bit
/// IV; the counter of byte offset o is IV + o / 16. A file written under
/// another key is refused by name instead of decrypting to garbage.
std::unique_ptr<rocksdb::Env> make_encrypted_env(const node_key& key);

/// The fingerprint of the key a file was encrypted with, or nullopt when
/// the file does not begin with the encryption header (a plaintext file).
std::optional<std::string> file_key_id(const std::string& path);

}  // namespace healthtwin::storage
