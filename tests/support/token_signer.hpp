#pragma once
// Test-only: keys and signed JWT bearer tokens, as an identity provider
// would issue them (libjwt signs; OpenSSL makes the keys).

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

namespace healthtwin::testing {

/// A signing key pair (RS256 or ES256) or an HS256 secret.
struct signing_key {
  std::string alg;
  std::string private_pem;  // or the secret, for HS256
  std::string public_pem;   // empty for HS256
  std::string kid;
  EVP_PKEY* pkey = nullptr;

  signing_key() = default;
  signing_key(const signing_key&) = delete;
  signing_key& operator=(const signing_key&) = delete;
  ~signing_key() { EVP_PKEY_free(pkey); }

  static std::unique_ptr<signing_key> es256(std::string kid = {}) {
    return make("ES256", EVP_EC_gen("P-256"), std::move(kid));
  }
  static std::unique_ptr<signing_key> rs256(std::string kid = {}, unsigned bits = 2048) {
    return make("RS256", EVP_RSA_gen(bits), std::move(kid));
  }
  static std::unique_ptr<signing_key> hs256(std::string secret) {
    auto k = std::make_unique<signing_key>();
    k->alg = "HS256";
    k->private_pem = std::move(secret);
    return k;
  }

  /// An ES256/RS256 key from its private PEM (as written by a previous run).
  static std::unique_ptr<signing_key> from_private_pem(const std::string& alg, const std::string& pem,
                                                       std::string kid = {}) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!pkey)
      throw std::runtime_error("not a PEM private key");
    return make(alg.c_str(), pkey, std::move(kid));
  }

  /// The public key as a JWK (RFC 7517).
  nlohmann::json jwk() const {
    nlohmann::json j;
    if (!kid.empty())
      j["kid"] = kid;
    j["use"] = "sig";
    if (alg == "RS256") {
      j["kty"] = "RSA";
      j["n"] = b64url(bn_param(OSSL_PKEY_PARAM_RSA_N));
      j["e"] = b64url(bn_param(OSSL_PKEY_PARAM_RSA_E));
    } else {
      unsigned char pub[65];
      size_t len = 0;
      EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len);
      j["kty"] = "EC";
      j["crv"] = "P-256";
      j["x"] = b64url(std::string(reinterpret_cast<char*>(pub) + 1, 32));
      j["y"] = b64url(std::string(reinterpret_cast<char*>(pub) + 33, 32));
    }
    return j;
  }

  /// A compact JWS of `claims`, signed with this key.
  std::string sign(const nlohmann::json& claims, const std::string& as_alg = {}) const {
    jwt_t* jwt = nullptr;
    jwt_new(&jwt);
    jwt_add_grants_json(jwt, claims.dump().c_str());
    if (!kid.empty())
      jwt_add_header(jwt, "kid", kid.c_str());
    auto alg_name = as_alg.empty() ? alg : as_alg;
    jwt_set_alg(jwt, jwt_str_alg(alg_name.c_str()),
                reinterpret_cast<const unsigned char*>(private_pem.data()),
                static_cast<int>(private_pem.size()));
    char* s = jwt_encode_str(jwt);
    std::string out = s ? s : "";
    free(s);
    jwt_free(jwt);
    if (out.empty())
      throw std::runtime_error("libjwt could not sign");
    return out;
  }

private:
  static std::unique_ptr<signing_key> make(const char* alg, EVP_PKEY* pkey, std::string kid) {
    auto k = std::make_unique<signing_key>();
    k->alg = alg;
    k->pkey = pkey;
    k->kid = std::move(kid);
    BIO* priv = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(priv, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    k->private_pem = drain(priv);
    BIO* pub = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(pub, pkey);
    k->public_pem = drain(pub);
    return k;
  }
  static std::string drain(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<size_t>(len));
    BIO_free(bio);
    return s;
  }
  std::string bn_param(const char* name) const {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(pkey, name, &bn);
    std::string s(static_cast<size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(s.data()));
    BN_free(bn);
    return s;
  }
  static std::string b64url(const std::string& raw) {
    std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
    out.resize(static_cast<size_t>(n));
    while (!out.empty() && out.back() == '=')
      out.pop_back();
    for (auto& c : out)
      c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
  }
};

inline int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Claims of a token for `roles` in `tenant`, valid for an hour.
inline nlohmann::json token_claims(const std::string& subject, const std::string& tenant,
                                   const std::vector<std::string>& roles,
                                   const std::string& device = {},
                                   const std::string& audience = "healthtwin") {
  nlohmann::json c{{"sub", subject}, {"tenant", tenant}, {"roles", roles},
                   {"aud", audience}, {"iat", unix_now()}, {"exp", unix_now() + 3600}};
  if (!device.empty())
    c["device"] = device;
  return c;
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out{p, std::ios::binary};
  out << text;
}

}  // namespace healthtwin::testing
