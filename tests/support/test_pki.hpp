#pragma once
// Test-only: a throwaway certificate authority with a node certificate
// (127.0.0.1 and localhost) and a client certificate, made with the openssl
// command line tool, as an operator would.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace healthtwin::testing {

struct test_pki {
  std::filesystem::path ca_cert, ca_key;
  std::filesystem::path node_cert, node_key;
  std::filesystem::path client_cert, client_key;
  std::filesystem::path other_ca_cert;  // a CA the node does not trust
  std::filesystem::path other_client_cert, other_client_key;

  /// Creates the files in `dir` (kept if present, so restarts reuse them).
  explicit test_pki(const std::filesystem::path& dir) {
    ca_cert = dir / "ca.pem";
    ca_key = dir / "ca.key";
    node_cert = dir / "node.pem";
    node_key = dir / "node.key";
    client_cert = dir / "client.pem";
    client_key = dir / "client.key";
    other_ca_cert = dir / "other-ca.pem";
    other_client_cert = dir / "other-client.pem";
    other_client_key = dir / "other-client.key";
    if (std::filesystem::exists(other_client_key))
      return;
    std::filesystem::create_directories(dir);
    auto script = dir / "make-pki.sh";
    std::ofstream{script} << R"(set -e
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1"; }
leaf() { # name ca extensions
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" \
    -days 2 -extfile "$1.ext" 2>/dev/null
}
ca ca
ca other-ca
leaf node ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
leaf client ca "extendedKeyUsage=clientAuth"
leaf other-client other-ca "extendedKeyUsage=clientAuth"
chmod 600 *.key
)";
    auto cmd = "bash " + script.string() + " " + dir.string() + " >/dev/null";
    if (std::system(cmd.c_str()) != 0)
      throw std::runtime_error("openssl could not make the test PKI in " + dir.string());
  }
};

}  // namespace healthtwin::testing
