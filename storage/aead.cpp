#include "storage/aead.hpp"

#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace healthtwin::storage::aead {

namespace {

struct ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

}  // namespace

bool seal(const uint8_t* key, const uint8_t* nonce, std::string_view aad, std::string_view plain, std::string& out) {
  std::unique_ptr<EVP_CIPHER_CTX, ctx_free> ctx{EVP_CIPHER_CTX_new()};
  int n = 0;
  auto at = out.size();
  out.resize(at + plain.size() + tag_len);
  auto* dst = reinterpret_cast<unsigned char*>(out.data() + at);
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &n,
                              reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), dst, &n,
                              reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), dst + n, &n) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_len,
                                dst + plain.size()) == 1;
  if (!ok)
    out.resize(at);
  return ok;
}

std::optional<std::string> open(const uint8_t* key, const uint8_t* nonce, std::string_view aad,
                                std::string_view sealed) {
  if (sealed.size() < tag_len)
    return std::nullopt;
  auto body = sealed.substr(0, sealed.size() - tag_len);
  std::string tag{sealed.substr(body.size())};
  std::string plain(body.size(), '\0');
  std::unique_ptr<EVP_CIPHER_CTX, ctx_free> ctx{EVP_CIPHER_CTX_new()};
  int n = 0;
  auto* dst = reinterpret_cast<unsigned char*>(plain.data());
  bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &n,
                              reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), dst, &n,
                              reinterpret_cast<const unsigned char*>(body.data()),
                              static_cast<int>(body.size())) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_len, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), dst + n, &n) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return std::nullopt;
  }
  return plain;
}

bool random_nonce(std::array<uint8_t, nonce_len>& nonce) {
  return RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) == 1;
}

}  // namespace healthtwin::storage::aead
