// libFuzzer target: bearer token parsing and verification. The first byte
// picks the entry point: a whole token against an ES256 key, the claims
// JSON of a verified token, or the JOSE header alone.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "services/grpc/token_verifier.hpp"

using namespace healthtwin::services;

namespace {

// A fixed P-256 public key; the seed tokens are signed with its private half.
constexpr const char* public_pem = R"(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEaQhi3ddEgibzjkt8nSZm2X+SAKaz
FFpYqFNSD5EvdcLqR4Tc0Tf/3z1QMfLj/16YpuMNUiETc2FyahT/OuVcHg==
-----END PUBLIC KEY-----
)";

token_settings settings;
std::unique_ptr<token_verifier> verifier;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/healthtwin-fuzz-token.XXXXXX";
  if (!mkdtemp(dir))
    std::abort();
  settings.audience = "healthtwin";
  settings.public_key_file = std::string{dir} + "/key.pem";
  std::ofstream{settings.public_key_file} << public_pem;
  std::string error;
  verifier = token_verifier::load(settings, error);
  if (!verifier)
    std::abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  constexpr int64_t now = 1'790'000'000;  // fixed: runs are reproducible
  switch (data[0] % 3) {
  case 0: {
    auto v = verifier->verify(input, now);
    if (v.who && v.who->subject.empty())
      std::abort();  // a principal always names its subject
    break;
  }
  case 1: {
    auto v = principal_from_claims(input, settings, now);
    if (v.who.has_value() == !v.error.empty())
      std::abort();  // exactly one of principal and reason
    if (v.who && (v.who->tenant.empty() || v.who->roles == 0))
      std::abort();
    break;
  }
  default:
    peek_header(input);
  }
  return 0;
}
