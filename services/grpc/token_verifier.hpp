#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "services/grpc/access_policy.hpp"

namespace healthtwin::services {

/// Where the keys that sign bearer tokens come from, and what a token must
/// say. Exactly one key source is set.
struct token_settings {
  /// Required `aud` value.
  std::string audience;
  /// Required `iss` value; empty: not checked.
  std::string issuer;
  /// PEM public key: RSA (RS256) or EC P-256 (ES256).
  std::string public_key_file;
  /// JWKS document (RFC 7517) with RSA and EC P-256 keys; tokens pick one by
  /// `kid` (optional when the set holds a single key).
  std::string jwks_file;
  /// Shared secret for HS256: development only (whoever verifies can sign).
  std::string hs256_secret_file;
  /// Clock tolerance for `exp` and `nbf`.
  std::chrono::seconds leeway{30};
};

/// What verification yields: the principal, or why the token was refused.
struct verified_token {
  std::optional<principal> who;
  std::string error;  ///< names the part at fault, e.g. "claim exp: expired"
};

/// The claims of a verified token as a principal: `sub`, `tenant`, `roles`
/// (array of role names), `device` (device tokens only), `exp`, `nbf`, `aud`,
/// `iss`. Pure, so that it can be tested and fuzzed on its own.
verified_token principal_from_claims(std::string_view claims_json, const token_settings& s,
                                     int64_t now_s);

/// The JOSE header of a compact JWS (`alg`, `kid`), decoded without any
/// verification; nullopt when it is not base64url JSON.
struct token_header {
  std::string alg;
  std::string kid;
};
std::optional<token_header> peek_header(std::string_view token);

/// Verifies JWT bearer tokens (RS256, ES256, HS256) with libjwt against the
/// configured keys. The algorithm must match the key's type, so a token
/// cannot choose a weaker check (no `none`, no HS256 with a public key).
/// Verified tokens are cached until they expire, keyed by their SHA-256
/// (up to 65,536 of them: a fleet of devices with a token each stays cached;
/// beyond, an arbitrary entry makes room). Thread-safe.
class token_verifier {
public:
  /// Loads the key source; an error names the file or JWKS member at fault.
  static std::unique_ptr<token_verifier> load(const token_settings& settings, std::string& error);

  verified_token verify(std::string_view token, int64_t now_s) const;

  /// Reads the key source again if its file changed (a key rotation: add
  /// the new key, let the issuer sign with it, drop the old one). A source
  /// that does not load keeps the keys in use; `error` says why. Tokens
  /// verified before a change are verified again (a dropped key's tokens
  /// stop passing at once). True when the keys changed.
  bool reload(std::string& error);

  /// What decides which tokens pass, as cluster members compare it (a
  /// forwarded call's token is verified again by its owner): SHA-256 (hex)
  /// of the audience and issuer, and of each key (kid, algorithm, key),
  /// sorted. Members must agree on the first and share a key. Reveals no key.
  std::string claims_hash() const;
  std::vector<std::string> key_hashes() const;

  struct key {
    std::string alg;  // RS256, ES256 or HS256
    std::string material;  // PEM public key, or the HS256 secret
  };
  using key_set = std::map<std::string, key>;  // by kid ("" for a single PEM or secret)

private:
  token_verifier(token_settings s, key_set keys, std::string stamp)
      : settings_(std::move(s)), keys_(std::make_shared<const key_set>(std::move(keys))), stamp_(std::move(stamp)) {}
  verified_token verify_uncached(std::string_view token, int64_t now_s) const;
  std::shared_ptr<const key_set> keys() const;

  token_settings settings_;
  mutable std::mutex keys_mtx_;
  std::shared_ptr<const key_set> keys_;
  std::string stamp_;  // of the key source's file, when loaded
  mutable std::mutex cache_mtx_;
  uint64_t generation_ = 0;  // of the keys, +1 on each change; under cache_mtx_
  mutable std::unordered_map<std::string, principal> cache_;  // SHA-256 of the token -> who
};

}  // namespace healthtwin::services
