#include "storage/node_key.hpp"

#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "storage/errc.hpp"

namespace healthtwin::storage {

namespace {

caf::error refuse(const std::string& path, const std::string& why) {
  return caf::make_error(errc::invalid_settings, "encryption key file " + path + ": " + why);
}

}  // namespace

caf::expected<node_key> node_key::load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return refuse(path, "cannot be read");
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    return refuse(path, "is accessible by group or others; restrict it with chmod 600");
  std::ifstream in{path, std::ios::binary};
  std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  if (!in.good() && !in.eof())
    return refuse(path, "cannot be read");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  node_key key;
  size_t len = 0;
  bool ok = text.size() == 64 &&
            OPENSSL_hexstr2buf_ex(key.master_.data(), key.master_.size(), &len, text.c_str(),
                                  '\0') == 1 &&
            len == key.master_.size();
  OPENSSL_cleanse(text.data(), text.size());
  if (!ok)
    return refuse(path, "must hold exactly 64 hexadecimal digits (a 256-bit key)");
  return key;
}

node_key node_key::from_bytes(const bytes& raw) {
  node_key key;
  key.master_ = raw;
  return key;
}

node_key::~node_key() {
  OPENSSL_cleanse(master_.data(), master_.size());
}

node_key::bytes node_key::derive(std::string_view label) const {
  return hmac_sha256(master_, label);
}

std::string node_key::id() const {
  auto d = derive("healthtwin key fingerprint");
  auto out = short_hex(d);
  OPENSSL_cleanse(d.data(), d.size());
  return out;
}

node_key::bytes hmac_sha256(const node_key::bytes& key, std::string_view data) {
  node_key::bytes out{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

struct hmac_sha256_key::keyed {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* ctx = nullptr;  // initialised with the key; copied per call
};

hmac_sha256_key::hmac_sha256_key(const node_key::bytes& key) : key_(key) {
  auto* k = new keyed;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  k->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  k->ctx = k->mac ? EVP_MAC_CTX_new(k->mac) : nullptr;
  if (k->ctx && EVP_MAC_init(k->ctx, key.data(), key.size(), params) == 1) {
    keyed_ = k;
    return;
  }
  EVP_MAC_CTX_free(k->ctx);
  EVP_MAC_free(k->mac);
  delete k;
}

hmac_sha256_key::~hmac_sha256_key() {
  if (keyed_) {
    EVP_MAC_CTX_free(keyed_->ctx);  // cleanses the keyed state
    EVP_MAC_free(keyed_->mac);
    delete keyed_;
  }
  OPENSSL_cleanse(key_.data(), key_.size());
}

node_key::bytes hmac_sha256_key::operator()(std::string_view data) const {
  EVP_MAC_CTX* ctx = keyed_ ? EVP_MAC_CTX_dup(keyed_->ctx) : nullptr;
  if (!ctx)
    return hmac_sha256(key_, data);
  node_key::bytes out{};
  size_t len = 0;
  bool ok = EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
            EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == out.size();
  EVP_MAC_CTX_free(ctx);
  return ok ? out : hmac_sha256(key_, data);
}

std::string short_hex(const node_key::bytes& digest) {
  char hex[17] = {};
  size_t len = 0;
  OPENSSL_buf2hexstr_ex(hex, sizeof hex, &len, digest.data(), 8, '\0');
  return std::string{hex};
}

}  // namespace healthtwin::storage
