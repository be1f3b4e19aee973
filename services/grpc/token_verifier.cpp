#include "services/grpc/token_verifier.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "services/grpc/read_file.hpp"

namespace healthtwin::services {

namespace {

using json = nlohmann::json;

constexpr size_t max_token_bytes = 8192;

std::optional<std::string> base64url_decode(std::string_view in) {
  std::string s{in};
  for (auto& c : s) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (!std::isalnum(static_cast<unsigned char>(c)))
      return std::nullopt;  // padding or junk: JWS uses unpadded base64url
  }
  if (s.size() % 4 == 1)
    return std::nullopt;
  while (s.size() % 4 != 0)
    s.push_back('=');
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0)
    return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes.
  auto pad = static_cast<size_t>(std::count(s.end() - 2, s.end(), '='));
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

struct pkey_deleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

std::string to_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (PEM_write_bio_PUBKEY(bio, key) == 1) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return pem;
}

// The JWS algorithm a public key verifies, or empty for other key types.
std::string alg_of(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA"))
    return EVP_PKEY_get_bits(key) >= 2048 ? "RS256" : "";
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) == 1 &&
        std::string_view{group} == "prime256v1")
      return "ES256";
  }
  return {};
}

// A public key from JWK members (RSA: n, e; EC P-256: x, y).
pkey_ptr key_from_jwk(const json& jwk, std::string& error) {
  auto member = [&](const char* name) -> std::optional<std::string> {
    if (!jwk.contains(name) || !jwk[name].is_string()) {
      error = std::string{"member "} + name + " missing or not a string";
      return std::nullopt;
    }
    auto raw = base64url_decode(jwk[name].get<std::string>());
    if (!raw)
      error = std::string{"member "} + name + " is not base64url";
    return raw;
  };
  auto kty = jwk.value("kty", "");
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  BIGNUM *n = nullptr, *e = nullptr;
  std::string point;
  const char* type = nullptr;
  if (kty == "RSA") {
    auto nn = member("n"), ee = member("e");
    if (!nn || !ee) {
      OSSL_PARAM_BLD_free(bld);
      return nullptr;
    }
    n = BN_bin2bn(reinterpret_cast<const unsigned char*>(nn->data()), static_cast<int>(nn->size()), nullptr);
    e = BN_bin2bn(reinterpret_cast<const unsigned char*>(ee->data()), static_cast<int>(ee->size()), nullptr);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    type = "RSA";
  } else if (kty == "EC") {
    if (jwk.value("crv", "") != "P-256") {
      error = "member crv must be P-256";
      OSSL_PARAM_BLD_free(bld);
      return nullptr;
    }
    auto x = member("x"), y = member("y");
    if (!x || !y || x->size() != 32 || y->size() != 32) {
      if (error.empty())
        error = "members x and y must be 32 bytes each";
      OSSL_PARAM_BLD_free(bld);
      return nullptr;
    }
    point = "\x04" + *x + *y;  // uncompressed point
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
    type = "EC";
  } else {
    error = "member kty must be RSA or EC";
    OSSL_PARAM_BLD_free(bld);
    return nullptr;
  }
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    error = "not a valid public key";
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(n);
  BN_free(e);
  return pkey_ptr{key};
}

// Seconds from a numeric claim; nullopt when absent, error when not a
// number of seconds within +-10^12 (about 31,700 years: no real date is
// further, and the range keeps every conversion and sum defined).
bool numeric_claim(const json& claims, const char* name, std::optional<int64_t>& out, std::string& error) {
  if (!claims.contains(name))
    return true;
  auto& v = claims[name];
  constexpr double limit = 1e12;
  bool ok = false;
  if (v.is_number_unsigned())
    ok = v.get<uint64_t>() <= static_cast<uint64_t>(limit);
  else if (v.is_number_integer())
    ok = std::abs(static_cast<double>(v.get<int64_t>())) <= limit;
  else if (v.is_number_float())
    ok = std::isfinite(v.get<double>()) && std::abs(v.get<double>()) <= limit;
  if (!ok) {
    error = std::string{"claim "} + name + ": must be a number of seconds since 1970";
    return false;
  }
  out = v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
  return true;
}

}  // namespace

std::optional<token_header> peek_header(std::string_view token) {
  auto dot = token.find('.');
  if (dot == std::string_view::npos)
    return std::nullopt;
  auto raw = base64url_decode(token.substr(0, dot));
  if (!raw)
    return std::nullopt;
  auto header = json::parse(*raw, nullptr, false);
  if (!header.is_object() || !header.contains("alg") || !header["alg"].is_string())
    return std::nullopt;
  token_header h;
  h.alg = header["alg"].get<std::string>();
  if (header.contains("kid") && header["kid"].is_string())
    h.kid = header["kid"].get<std::string>();
  return h;
}

verified_token principal_from_claims(std::string_view claims_json, const token_settings& s,
                                     int64_t now_s) {
  verified_token out;
  auto fail = [&](std::string why) {
    out.error = std::move(why);
    return out;
  };
  auto claims = json::parse(claims_json, nullptr, false);
  if (!claims.is_object())
    return fail("claims: not a JSON object");
  std::optional<int64_t> exp, nbf;
  std::string error;
  if (!numeric_claim(claims, "exp", exp, error) || !numeric_claim(claims, "nbf", nbf, error))
    return fail(error);
  if (!exp)
    return fail("claim exp: missing (tokens must expire)");
  if (*exp + s.leeway.count() <= now_s)
    return fail("claim exp: the token has expired");
  if (nbf && *nbf - s.leeway.count() > now_s)
    return fail("claim nbf: the token is not valid yet");
  auto aud_ok = [&] {
    if (!claims.contains("aud"))
      return false;
    auto& aud = claims["aud"];
    if (aud.is_string())
      return aud.get<std::string>() == s.audience;
    if (aud.is_array())
      for (auto& a : aud)
        if (a.is_string() && a.get<std::string>() == s.audience)
          return true;
    return false;
  };
  if (!aud_ok())
    return fail("claim aud: does not name this service (" + s.audience + ")");
  if (!s.issuer.empty() && claims.value("iss", json{}) != json(s.issuer))
    return fail("claim iss: not the configured issuer");
  principal p;
  auto str = [&](const char* name, std::string& to, size_t max) {
    if (!claims.contains(name) || !claims[name].is_string())
      return false;
    to = claims[name].get<std::string>();
    return !to.empty() && to.size() <= max;
  };
  if (!str("sub", p.subject, 256))
    return fail("claim sub: must be a string of 1-256 characters");
  for (auto c : p.subject)
    if (static_cast<unsigned char>(c) < 0x20)
      return fail("claim sub: must not contain control characters");
  if (!str("tenant", p.tenant, 63))
    return fail("claim tenant: must be a string of 1-63 characters");
  if (!claims.contains("roles") || !claims["roles"].is_array() || claims["roles"].empty())
    return fail("claim roles: must be a non-empty array of role names");
  for (auto& r : claims["roles"]) {
    auto parsed = r.is_string() ? role_from_name(r.get<std::string>()) : std::nullopt;
    if (!parsed)
      return fail("claim roles: unknown role (device, service, clinician, ops-admin, sre)");
    p.roles = p.roles | *parsed;
  }
  if (has(p.roles, role::device)) {
    if (p.roles != static_cast<role_set>(role::device))
      return fail("claim roles: a device token carries no other role");
    if (!str("device", p.device, 63))
      return fail("claim device: device tokens must name their device id");
  }
  p.expires_s = *exp;
  out.who = std::move(p);
  return out;
}

namespace {

// The keys of `s`'s source, or nullopt and `error`.
std::optional<token_verifier::key_set> load_keys(const token_settings& s, std::string& error) {
  token_verifier::key_set keys;
  int sources = !s.public_key_file.empty() + !s.jwks_file.empty() + !s.hs256_secret_file.empty();
  if (sources != 1) {
    error = "exactly one of --auth-public-key-file, --auth-jwks-file and --auth-hs256-secret-file must be set";
    return std::nullopt;
  }
  if (s.audience.empty()) {
    error = "--auth-audience must be set";
    return std::nullopt;
  }
  if (!s.hs256_secret_file.empty()) {
    auto secret = read_file(s.hs256_secret_file);
    if (!secret) {
      error = "--auth-hs256-secret-file: cannot read " + s.hs256_secret_file;
      return std::nullopt;
    }
    while (!secret->empty() && (secret->back() == '\n' || secret->back() == '\r'))
      secret->pop_back();
    if (secret->size() < 32) {
      error = "--auth-hs256-secret-file: the secret must be at least 32 bytes";
      return std::nullopt;
    }
    keys[""] = {"HS256", *secret};
  } else if (!s.public_key_file.empty()) {
    auto pem = read_file(s.public_key_file);
    BIO* bio = pem ? BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())) : nullptr;
    pkey_ptr k{bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr};
    BIO_free(bio);
    auto alg = k ? alg_of(k.get()) : std::string{};
    if (alg.empty()) {
      error = "--auth-public-key-file: " + s.public_key_file +
              " is not a PEM public key of RSA (2048 bits or more) or EC P-256";
      return std::nullopt;
    }
    keys[""] = {alg, to_pem(k.get())};
  } else {
    auto text = read_file(s.jwks_file);
    auto doc = text ? json::parse(*text, nullptr, false) : json{};
    if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array() || doc["keys"].empty()) {
      error = "--auth-jwks-file: " + s.jwks_file + " is not a JWKS document with a keys array";
      return std::nullopt;
    }
    for (size_t i = 0; i < doc["keys"].size(); ++i) {
      auto& jwk = doc["keys"][i];
      auto where = "--auth-jwks-file: keys[" + std::to_string(i) + "]: ";
      if (!jwk.is_object()) {
        error = where + "not an object";
        return std::nullopt;
      }
      if (jwk.contains("use") && jwk["use"] != "sig")
        continue;  // an encryption key: not for us
      std::string why;
      auto k = key_from_jwk(jwk, why);
      auto alg = k ? alg_of(k.get()) : std::string{};
      if (alg.empty()) {
        error = where + (why.empty() ? "unsupported key (RSA 2048+ or EC P-256)" : why);
        return std::nullopt;
      }
      if (jwk.contains("alg") && jwk["alg"] != alg) {
        error = where + "member alg does not match the key type (" + alg + ")";
        return std::nullopt;
      }
      auto kid = jwk.value("kid", "");
      if (keys.count(kid)) {
        error = where + "kid '" + kid + "' appears twice";
        return std::nullopt;
      }
      keys[kid] = {alg, to_pem(k.get())};
    }
  }
  return keys;
}

const std::string& source_file(const token_settings& s) {
  return !s.jwks_file.empty() ? s.jwks_file : !s.public_key_file.empty() ? s.public_key_file : s.hs256_secret_file;
}

std::string sha256_hex(const std::string& text) {
  unsigned char digest[32];
  unsigned len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::unique_ptr<token_verifier> token_verifier::load(const token_settings& s, std::string& error) {
  auto stamp = file_stamp(source_file(s));
  auto keys = load_keys(s, error);
  if (!keys)
    return nullptr;
  return std::unique_ptr<token_verifier>{new token_verifier(s, std::move(*keys), std::move(stamp))};
}

bool token_verifier::reload(std::string& error) {
  auto stamp = file_stamp(source_file(settings_));
  {
    std::lock_guard<std::mutex> guard{keys_mtx_};
    if (stamp == stamp_)
      return false;
  }
  auto keys = load_keys(settings_, error);
  std::lock_guard<std::mutex> guard{keys_mtx_};
  stamp_ = std::move(stamp);
  if (!keys)
    return false;  // the last good keys stay; the file is read again when it changes
  bool same = keys->size() == keys_->size() &&
              std::equal(keys->begin(), keys->end(), keys_->begin(), [](auto& a, auto& b) {
                return a.first == b.first && a.second.alg == b.second.alg && a.second.material == b.second.material;
              });
  if (same)
    return false;
  keys_ = std::make_shared<const key_set>(std::move(*keys));
  std::lock_guard<std::mutex> cache{cache_mtx_};
  cache_.clear();  // verified with the old keys
  ++generation_;   // and none verified with them is cached after this
  return true;
}

std::shared_ptr<const token_verifier::key_set> token_verifier::keys() const {
  std::lock_guard<std::mutex> guard{keys_mtx_};
  return keys_;
}

std::string token_verifier::claims_hash() const {
  return sha256_hex(settings_.audience + '\n' + settings_.issuer + '\n');
}

std::vector<std::string> token_verifier::key_hashes() const {
  std::vector<std::string> out;
  for (auto& [kid, k] : *keys())
    out.push_back(sha256_hex(kid + '\n' + k.alg + '\n' + k.material + '\n'));
  std::sort(out.begin(), out.end());
  return out;
}



verified_token token_verifier::verify(std::string_view token, int64_t now_s) const {
  // A cryptographic digest as the key: no other token can find this entry.
  std::string digest(32, '\0');
  unsigned len = 0;
  EVP_Digest(token.data(), token.size(), reinterpret_cast<unsigned char*>(digest.data()), &len,
             EVP_sha256(), nullptr);
  {
    std::lock_guard<std::mutex> guard{cache_mtx_};
    auto it = cache_.find(digest);
    if (it != cache_.end()) {
      if (it->second.expires_s + settings_.leeway.count() > now_s)
        return {it->second, {}};
      cache_.erase(it);
    }
  }
  uint64_t generation;
  {
    std::lock_guard<std::mutex> guard{cache_mtx_};
    generation = generation_;
  }
  auto v = verify_uncached(token, now_s);
  if (v.who) {
    std::lock_guard<std::mutex> guard{cache_mtx_};
    if (generation != generation_)
      return v;  // the keys changed meanwhile: not cached
    if (cache_.size() >= 65'536)
      cache_.erase(cache_.begin());  // bounded; the evicted token is verified again when next seen
    cache_.emplace(std::move(digest), *v.who);
  }
  return v;
}

verified_token token_verifier::verify_uncached(std::string_view token, int64_t now_s) const {
  verified_token out;
  if (token.size() > max_token_bytes) {
    out.error = "token: longer than 8 KiB";
    return out;
  }
  auto header = peek_header(token);
  if (!header) {
    out.error = "token: not a compact JWS (header.payload.signature)";
    return out;
  }
  auto keys = this->keys();
  auto it = keys->find(header->kid);
  if (it == keys->end() && keys->size() == 1 && header->kid.empty())
    it = keys->begin();
  if (it == keys->end()) {
    out.error = "header kid: no configured key has this id";
    return out;
  }
  const key& k = it->second;
  if (header->alg != k.alg) {
    out.error = "header alg: must be " + k.alg + " for this key";
    return out;
  }
  std::string nul_terminated{token};
  jwt_t* jwt = nullptr;
  int rc = jwt_decode(&jwt, nul_terminated.c_str(),
                      reinterpret_cast<const unsigned char*>(k.material.data()),
                      static_cast<int>(k.material.size()));
  if (rc != 0 || !jwt) {
    out.error = "signature: does not verify";
    return out;
  }
  // libjwt checked the signature with the algorithm the token names; it must
  // be the key's own (checked above on the header, again on the result).
  if (jwt_alg_str(jwt_get_alg(jwt)) != k.alg) {
    jwt_free(jwt);
    out.error = "header alg: must be " + k.alg + " for this key";
    return out;
  }
  char* claims = jwt_get_grants_json(jwt, nullptr);
  jwt_free(jwt);
  if (!claims) {
    out.error = "claims: none";
    return out;
  }
  out = principal_from_claims(claims, settings_, now_s);
  free(claims);
  return out;
}

}  // namespace healthtwin::services
