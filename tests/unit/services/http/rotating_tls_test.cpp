#include "services/http/server_socket.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "services/grpc/read_file.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"

using namespace healthtwin::services;
namespace fs = std::filesystem;

namespace {

// The subject of the certificate a context serves.
std::string subject(boost::asio::ssl::context& c) {
  auto* cert = SSL_CTX_get0_certificate(c.native_handle());
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

}  // namespace

TEST(rotating_tls, new_connections_get_certificate_files_that_changed_and_load) {
  healthtwin::testing::temp_dir dir;
  healthtwin::testing::test_pki pki{dir.path() / "pki"};
  auto cert = dir.path() / "tls.crt", key = dir.path() / "tls.key";
  auto put = [](const fs::path& from, const fs::path& to) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  };
  put(pki.node_cert, cert);
  put(pki.node_key, key);
  std::string why;
  EXPECT_FALSE(rotating_tls::open(*read_file(pki.node_cert), *read_file(pki.client_key), cert, key,
                                  std::chrono::seconds(1), "test", why));
  EXPECT_EQ(why.rfind("the TLS certificate and key do not load", 0), 0u) << why;
  auto tls = rotating_tls::open(*read_file(cert), *read_file(key), cert, key, std::chrono::seconds(1), "test", why);
  ASSERT_TRUE(tls) << why;
  auto& first = tls->current();
  EXPECT_EQ(subject(first), "/CN=node");

  put(pki.client_cert, cert);  // the certificate without its key: not taken
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(&tls->current(), &first);
  put(pki.client_key, key);
  EXPECT_EQ(&tls->current(), &first);  // looked at once a second at most
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto& second = tls->current();
  EXPECT_NE(&second, &first);
  EXPECT_EQ(subject(second), "/CN=client");
  EXPECT_EQ(subject(first), "/CN=node");  // sessions of the first keep theirs
}
