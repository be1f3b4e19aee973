#include "storage/file_encryption.hpp"

#include <sys/random.h>

#include <array>
#include <cstring>
#include <fstream>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <rocksdb/env_encryption.h>

namespace healthtwin::storage {

namespace {

// Header layout (the first header_size bytes of every file, in plaintext):
//   [0, 8)   marker "HTAES256"
//   [8, 24)  key fingerprint, 16 ASCII hex digits
//   [24, 40) IV (random per file)
//   rest     zero
constexpr size_t header_size = 4096;  // a page, as RocksDB recommends
constexpr char marker[8] = {'H', 'T', 'A', 'E', 'S', '2', '5', '6'};
constexpr size_t id_at = 8;
constexpr size_t id_len = 16;
constexpr size_t iv_at = id_at + id_len;
constexpr size_t iv_len = 16;

using key_bytes = node_key::bytes;
using iv_bytes = std::array<uint8_t, iv_len>;

struct cipher_ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// AES-256-CTR is its own inverse: XORs `data` in place with the key stream
// at byte `offset` of the file body.
rocksdb::Status crypt(const key_bytes& key, const iv_bytes& iv, uint64_t offset, char* data,
                      size_t size) {
  // Counter block = IV + offset / 16, as one 128-bit big-endian number.
  iv_bytes counter = iv;
  uint64_t add = offset / 16;
  for (size_t i = counter.size(); i-- > 0 && add != 0;) {
    uint64_t sum = uint64_t{counter[i]} + (add & 0xff);
    counter[i] = static_cast<uint8_t>(sum);
    add = (add >> 8) + (sum >> 8);
  }
  // A context per call (one per read or write of a block or more): RocksDB
  // reads a file from several threads, and thread-local contexts would
  // outlive RocksDB's never-joined background threads.
  std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free> owned{EVP_CIPHER_CTX_new()};
  auto* ctx = owned.get();
  if (ctx == nullptr || EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, key.data(),
                                           counter.data()) != 1)
    return rocksdb::Status::IOError("AES-256-CTR initialisation failed");
  int out = 0;
  if (auto skip = static_cast<int>(offset % 16); skip != 0) {
    unsigned char waste[16] = {};
    if (EVP_EncryptUpdate(ctx, waste, &out, waste, skip) != 1)
      return rocksdb::Status::IOError("AES-256-CTR failed");
  }
  auto* p = reinterpret_cast<unsigned char*>(data);
  // EVP lengths are int: go in slices.
  constexpr size_t slice = size_t{1} << 30;
  for (size_t done = 0; done < size; done += slice) {
    auto n = static_cast<int>(std::min(slice, size - done));
    if (EVP_EncryptUpdate(ctx, p + done, &out, p + done, n) != 1)
      return rocksdb::Status::IOError("AES-256-CTR failed");
  }
  return rocksdb::Status::OK();
}

class ctr_stream final : public rocksdb::BlockAccessCipherStream {
public:
  ctr_stream(const key_bytes& key, const iv_bytes& iv) : key_(key), iv_(iv) {}
  ~ctr_stream() override { OPENSSL_cleanse(key_.data(), key_.size()); }

  size_t BlockSize() override { return 16; }
  rocksdb::Status Encrypt(uint64_t offset, char* data, size_t size) override {
    return crypt(key_, iv_, offset, data, size);
  }
  rocksdb::Status Decrypt(uint64_t offset, char* data, size_t size) override {
    return crypt(key_, iv_, offset, data, size);
  }

protected:
  void AllocateScratch(std::string&) override {}
  rocksdb::Status EncryptBlock(uint64_t index, char* data, char*) override {
    return crypt(key_, iv_, index * 16, data, 16);
  }
  rocksdb::Status DecryptBlock(uint64_t index, char* data, char*) override {
    return crypt(key_, iv_, index * 16, data, 16);
  }

private:
  key_bytes key_;
  iv_bytes iv_;
};

class aes_ctr_provider final : public rocksdb::EncryptionProvider {
public:
  explicit aes_ctr_provider(const node_key& key)
      : key_(key.derive("healthtwin file encryption v1")), key_id_(key.id()) {}
  ~aes_ctr_provider() override { OPENSSL_cleanse(key_.data(), key_.size()); }

  const char* Name() const override { return "HealthTwinAes256Ctr"; }
  size_t GetPrefixLength() const override { return header_size; }

  rocksdb::Status CreateNewPrefix(const std::string&, char* prefix,
                                  size_t length) const override {
    if (length < header_size)
      return rocksdb::Status::InvalidArgument("encryption header does not fit");
    std::memset(prefix, 0, length);
    std::memcpy(prefix, marker, sizeof marker);
    std::memcpy(prefix + id_at, key_id_.data(), id_len);
    // getrandom(2), not RAND_bytes: this runs on RocksDB's background
    // threads, which never exit, and OpenSSL's per-thread random state
    // would never be freed.
    if (::getrandom(prefix + iv_at, iv_len, 0) != static_cast<ssize_t>(iv_len))
      return rocksdb::Status::IOError("no random bytes for a file IV");
    return rocksdb::Status::OK();
  }

  rocksdb::Status AddCipher(const std::string&, const char*, size_t, bool) override {
    return rocksdb::Status::NotSupported("the node key is fixed at start");
  }

  rocksdb::Status CreateCipherStream(
      const std::string& fname, const rocksdb::EnvOptions&, rocksdb::Slice& prefix,
      std::unique_ptr<rocksdb::BlockAccessCipherStream>* result) override {
    if (prefix.size() < header_size || std::memcmp(prefix.data(), marker, sizeof marker) != 0)
      return rocksdb::Status::Corruption(fname + " is not encrypted (no encryption header)");
    std::string_view id{prefix.data() + id_at, id_len};
    if (id != key_id_)
      return rocksdb::Status::InvalidArgument(fname + " was encrypted with key " +
                                              std::string{id} + ", not the configured key " +
                                              key_id_);
    iv_bytes iv;
    std::memcpy(iv.data(), prefix.data() + iv_at, iv_len);
    *result = std::make_unique<ctr_stream>(key_, iv);
    return rocksdb::Status::OK();
  }

private:
  key_bytes key_;
  std::string key_id_;
};

}  // namespace

std::unique_ptr<rocksdb::Env> make_encrypted_env(const node_key& key) {
  auto provider = std::make_shared<aes_ctr_provider>(key);
  return std::unique_ptr<rocksdb::Env>{rocksdb::NewEncryptedEnv(rocksdb::Env::Default(), provider)};
}

std::optional<std::string> file_key_id(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  char head[iv_at] = {};
  if (!in.read(head, sizeof head) || std::memcmp(head, marker, sizeof marker) != 0)
    return std::nullopt;
  return std::string{head + id_at, id_len};
}

}  // namespace healthtwin::storage
