#include "services/grpc/token_verifier.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "tests/support/temp_dir.hpp"
#include "tests/support/token_signer.hpp"

using namespace healthtwin::services;
using healthtwin::testing::signing_key;
using healthtwin::testing::token_claims;
using healthtwin::testing::unix_now;
using healthtwin::testing::write_text;

namespace {

class token_verifier_test : public ::testing::Test {
protected:
  std::unique_ptr<token_verifier> verifier_for(token_settings s) {
    if (s.audience.empty())
      s.audience = "healthtwin";
    std::string error;
    auto v = token_verifier::load(s, error);
    EXPECT_TRUE(v) << error;
    return v;
  }
  std::unique_ptr<token_verifier> verifier_for_pem(const signing_key& k) {
    token_settings s;
    s.public_key_file = file("key.pem", k.public_pem);
    return verifier_for(s);
  }
  std::string file(const std::string& name, const std::string& text) {
    auto p = dir_.path() / name;
    write_text(p, text);
    return p.string();
  }
  static std::string error_of(const token_verifier& v, const std::string& token) {
    auto r = v.verify(token, unix_now());
    EXPECT_FALSE(r.who) << "accepted: " << token;
    return r.error;
  }

  healthtwin::testing::temp_dir dir_;
};

}  // namespace

TEST_F(token_verifier_test, es256_and_rs256_tokens_yield_their_principal) {
  std::unique_ptr<signing_key> keys[] = {signing_key::es256(), signing_key::rs256()};
  for (auto& key : keys) {
    auto v = verifier_for_pem(*key);
    auto r = v->verify(key->sign(token_claims("nurse-7", "h1", {"clinician", "service"})), unix_now());
    ASSERT_TRUE(r.who) << key->alg << ": " << r.error;
    EXPECT_EQ(r.who->subject, "nurse-7");
    EXPECT_EQ(r.who->tenant, "h1");
    EXPECT_EQ(r.who->roles, role::clinician | role::service);
    // Served from the cache the second time, with the same answer.
    EXPECT_TRUE(v->verify(key->sign(token_claims("nurse-7", "h1", {"clinician"})), unix_now()).who);
  }
}

TEST_F(token_verifier_test, a_cached_token_is_refused_once_it_expires) {
  auto key = signing_key::es256();
  auto v = verifier_for_pem(*key);
  auto token = key->sign(token_claims("svc", "h1", {"service"}));  // expires in an hour
  EXPECT_TRUE(v->verify(token, unix_now()).who);
  EXPECT_TRUE(v->verify(token, unix_now() + 1800).who);  // from the cache
  auto late = v->verify(token, unix_now() + 2 * 3600);
  EXPECT_FALSE(late.who);
  EXPECT_NE(late.error.find("claim exp"), std::string::npos) << late.error;
}

TEST_F(token_verifier_test, expiry_not_before_audience_and_issuer_are_checked) {
  auto key = signing_key::es256();
  token_settings s;
  s.public_key_file = file("key.pem", key->public_pem);
  s.issuer = "https://idp.h1.example";
  auto v = verifier_for(s);
  auto claims = token_claims("svc", "h1", {"service"});
  claims["iss"] = "https://idp.h1.example";
  EXPECT_TRUE(v->verify(key->sign(claims), unix_now()).who);

  auto expired = claims;
  expired["exp"] = unix_now() - 120;
  EXPECT_NE(error_of(*v, key->sign(expired)).find("claim exp"), std::string::npos);
  auto no_exp = claims;
  no_exp.erase("exp");
  EXPECT_NE(error_of(*v, key->sign(no_exp)).find("claim exp"), std::string::npos);
  auto early = claims;
  early["nbf"] = unix_now() + 600;
  EXPECT_NE(error_of(*v, key->sign(early)).find("claim nbf"), std::string::npos);
  auto other_aud = claims;
  other_aud["aud"] = "billing";
  EXPECT_NE(error_of(*v, key->sign(other_aud)).find("claim aud"), std::string::npos);
  auto aud_list = claims;
  aud_list["aud"] = {"billing", "healthtwin"};
  EXPECT_TRUE(v->verify(key->sign(aud_list), unix_now()).who);
  auto other_iss = claims;
  other_iss["iss"] = "https://evil.example";
  EXPECT_NE(error_of(*v, key->sign(other_iss)).find("claim iss"), std::string::npos);
}

TEST_F(token_verifier_test, a_token_from_another_key_or_altered_does_not_verify) {
  auto key = signing_key::es256(), other = signing_key::es256();
  auto v = verifier_for_pem(*key);
  EXPECT_NE(error_of(*v, other->sign(token_claims("svc", "h1", {"service"}))).find("signature"),
            std::string::npos);
  // Swap in a payload claiming another tenant, keeping the signature.
  auto good = key->sign(token_claims("svc", "h1", {"service"}));
  auto forged_payload = key->sign(token_claims("svc", "h2", {"service"}));
  auto dot1 = good.find('.'), dot2 = good.rfind('.');
  auto forged = good.substr(0, dot1) +
                forged_payload.substr(forged_payload.find('.'), forged_payload.rfind('.') - forged_payload.find('.')) +
                good.substr(dot2);
  EXPECT_NE(error_of(*v, forged).find("signature"), std::string::npos);
}

TEST_F(token_verifier_test, a_token_cannot_choose_a_weaker_algorithm) {
  auto key = signing_key::rs256();
  auto v = verifier_for_pem(*key);
  // The classic confusion: HS256 keyed with the public key, which anyone has.
  auto confused = signing_key::hs256(key->public_pem);
  EXPECT_NE(error_of(*v, confused->sign(token_claims("x", "h1", {"service"}))).find("header alg"),
            std::string::npos);
  // alg none, no signature.
  auto unsigned_token = std::string{"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."} +  // {"alg":"none","typ":"JWT"}
                        "eyJzdWIiOiJ4IiwidGVuYW50IjoiaDEiLCJyb2xlcyI6WyJzZXJ2aWNlIl19.";
  EXPECT_NE(error_of(*v, unsigned_token).find("header alg"), std::string::npos);
  EXPECT_NE(error_of(*v, "not-a-token").find("compact JWS"), std::string::npos);
}

TEST_F(token_verifier_test, jwks_keys_are_chosen_by_kid) {
  auto rsa = signing_key::rs256("rsa-2026"), ec = signing_key::es256("ec-2026");
  nlohmann::json jwks{{"keys", {rsa->jwk(), ec->jwk()}}};
  token_settings s;
  s.jwks_file = file("jwks.json", jwks.dump());
  auto v = verifier_for(s);
  EXPECT_TRUE(v->verify(rsa->sign(token_claims("a", "h1", {"service"})), unix_now()).who);
  EXPECT_TRUE(v->verify(ec->sign(token_claims("b", "h1", {"clinician"})), unix_now()).who);
  auto stranger = signing_key::es256("unknown");
  EXPECT_NE(error_of(*v, stranger->sign(token_claims("c", "h1", {"service"}))).find("header kid"),
            std::string::npos);
}

// A key rotation without a restart: the new key added, then the old one
// dropped; a dropped key's tokens stop passing at once (even those verified
// before), and a key file that does not load keeps the keys in use.
TEST_F(token_verifier_test, reloaded_keys_rotate_without_a_restart) {
  auto old_key = signing_key::es256("2026-11"), new_key = signing_key::es256("2026-12");
  auto write_jwks = [&](std::vector<const signing_key*> keys) {
    nlohmann::json jwks{{"keys", nlohmann::json::array()}};
    for (auto* k : keys)
      jwks["keys"].push_back(k->jwk());
    auto next = file("jwks.next", jwks.dump());
    std::filesystem::rename(next, dir_.path() / "jwks.json");  // as a secret volume swaps it
  };
  write_jwks({old_key.get()});
  token_settings s;
  s.jwks_file = (dir_.path() / "jwks.json").string();
  auto v = verifier_for(s);
  auto old_token = old_key->sign(token_claims("a", "h1", {"service"}));
  auto new_token = new_key->sign(token_claims("b", "h1", {"service"}));
  ASSERT_TRUE(v->verify(old_token, unix_now()).who);
  EXPECT_FALSE(v->verify(new_token, unix_now()).who);
  std::string error;
  EXPECT_FALSE(v->reload(error)) << "unchanged file";
  auto one_key = v->key_hashes();
  ASSERT_EQ(one_key.size(), 1u);

  write_jwks({old_key.get(), new_key.get()});
  EXPECT_TRUE(v->reload(error)) << error;
  EXPECT_TRUE(v->verify(old_token, unix_now()).who);
  EXPECT_TRUE(v->verify(new_token, unix_now()).who);
  auto two_keys = v->key_hashes();
  ASSERT_EQ(two_keys.size(), 2u);
  EXPECT_NE(std::find(two_keys.begin(), two_keys.end(), one_key[0]), two_keys.end())
      << "a key's hash does not change when another is added";

  write_jwks({new_key.get()});
  EXPECT_TRUE(v->reload(error)) << error;
  EXPECT_NE(error_of(*v, old_token).find("header kid"), std::string::npos) << "the cached token is verified again";
  EXPECT_TRUE(v->verify(new_token, unix_now()).who);

  auto next = file("jwks.next", "{\"keys\": [");
  std::filesystem::rename(next, dir_.path() / "jwks.json");
  EXPECT_FALSE(v->reload(error));
  EXPECT_NE(error.find("--auth-jwks-file"), std::string::npos) << error;
  EXPECT_TRUE(v->verify(new_token, unix_now()).who) << "the keys in use stay";
  error.clear();
  EXPECT_FALSE(v->reload(error));
  EXPECT_EQ(error, "") << "a broken file is reported once, not at every check";
}

TEST_F(token_verifier_test, hs256_works_for_development_with_a_long_secret) {
  auto key = signing_key::hs256(std::string(40, 'k'));
  token_settings s;
  s.hs256_secret_file = file("secret", key->private_pem + "\n");
  auto v = verifier_for(s);
  EXPECT_TRUE(v->verify(key->sign(token_claims("dev", "demo", {"service"})), unix_now()).who);
}

TEST_F(token_verifier_test, bad_key_sources_are_refused_naming_the_option) {
  auto error_loading = [&](token_settings s) {
    s.audience = "healthtwin";
    std::string error;
    EXPECT_FALSE(token_verifier::load(s, error));
    return error;
  };
  token_settings none;
  EXPECT_NE(error_loading(none).find("exactly one"), std::string::npos);
  token_settings short_secret;
  short_secret.hs256_secret_file = file("short", "too-short");
  EXPECT_NE(error_loading(short_secret).find("--auth-hs256-secret-file"), std::string::npos);
  token_settings not_pem;
  not_pem.public_key_file = file("junk.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n");
  EXPECT_NE(error_loading(not_pem).find("--auth-public-key-file"), std::string::npos);
  token_settings weak_rsa;
  weak_rsa.public_key_file = file("weak.pem", signing_key::rs256({}, 1024)->public_pem);
  EXPECT_NE(error_loading(weak_rsa).find("2048"), std::string::npos);
  token_settings bad_jwks;
  bad_jwks.jwks_file = file("bad.json", R"({"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]})");
  EXPECT_NE(error_loading(bad_jwks).find("keys[0]: member crv"), std::string::npos);
}

TEST(principal_from_claims, roles_tenant_and_device_are_validated) {
  token_settings s;
  s.audience = "healthtwin";
  auto now = unix_now();
  auto error = [&](nlohmann::json c) { return principal_from_claims(c.dump(), s, now).error; };
  auto c = token_claims("pump-3", "h1", {"device"}, "pump-3");
  auto ok = principal_from_claims(c.dump(), s, now);
  ASSERT_TRUE(ok.who) << ok.error;
  EXPECT_EQ(ok.who->device, "pump-3");
  EXPECT_NE(error(token_claims("pump-3", "h1", {"device"})).find("claim device"), std::string::npos);
  EXPECT_NE(error(token_claims("x", "h1", {"device", "service"}, "d")).find("no other role"),
            std::string::npos);
  EXPECT_NE(error(token_claims("x", "h1", {"root"})).find("claim roles"), std::string::npos);
  EXPECT_NE(error(token_claims("x", "", {"service"})).find("claim tenant"), std::string::npos);
  EXPECT_NE(error(token_claims("", "h1", {"service"})).find("claim sub"), std::string::npos);
  auto no_roles = token_claims("x", "h1", {});
  EXPECT_NE(error(no_roles).find("claim roles"), std::string::npos);
  auto text_exp = token_claims("x", "h1", {"service"});
  text_exp["exp"] = "tomorrow";
  EXPECT_NE(error(text_exp).find("claim exp"), std::string::npos);
  EXPECT_NE(principal_from_claims("[1,2", s, now).error.find("claims"), std::string::npos);
  // Found by the fuzzer: a number beyond int64 was converted unchecked.
  for (auto bad : {"1.7e20", "-1e300", "18446744073709551615", "-9223372036854775808"}) {
    auto huge = token_claims("x", "h1", {"service"}).dump();
    auto at = huge.find("\"exp\":") + 6;
    huge.replace(at, huge.find_first_of(",}", at) - at, bad);
    EXPECT_NE(principal_from_claims(huge, s, now).error.find("claim exp"), std::string::npos) << huge;
  }
}
