// TLS on the gRPC and HTTP listeners, mutual TLS, and the refusal to start
// without a certificate unless plaintext is asked for.
#include <cstdio>
#include <memory>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace services = healthtwin::services;

namespace {

std::string run(const std::string& cmd) {
  return run_command(cmd);
}

grpc::Status node_status(const std::shared_ptr<grpc::Channel>& ch) {
  api_client c{ch};
  grpc::ClientContext ctx;
  api_client::deadline(ctx, 5);
  v1::NodeStatus s;
  return c.cluster->GetNodeStatus(&ctx, {}, &s);
}

// Whether an OpenSSL client completes a handshake at exactly `version`
// (-tls1_1, -tls1_2); SECLEVEL=0 so that only the server can say no.
bool handshake(uint16_t port, const std::string& version) {
  auto out = run("echo | timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " " +
                 version + " -cipher DEFAULT@SECLEVEL=0");
  return out.find("BEGIN CERTIFICATE") != std::string::npos ||
         out.find("Server certificate") != std::string::npos;
}

}  // namespace

TEST(transport_security_test, grpc_and_http_serve_tls_1_2_or_newer_only) {
  temp_dir dir;
  node_process node{dir.path()};
  ASSERT_TRUE(node.wait_ready()) << node.log();
  EXPECT_TRUE(node_status(node.channel()).ok());

  // A plaintext client gets nowhere.
  services::channel_settings plain;
  plain.target = node.target();
  plain.token = node.token();
  plain.plaintext = true;
  std::string error;
  EXPECT_EQ(node_status(services::make_channel(plain, error)).error_code(), grpc::StatusCode::UNAVAILABLE);
  // Nor does a TLS client that does not trust the node's CA.
  services::channel_settings untrusting;
  untrusting.target = node.target();
  untrusting.token = node.token();
  untrusting.ca_file = node.pki().other_ca_cert.string();
  EXPECT_EQ(node_status(services::make_channel(untrusting, error)).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  EXPECT_TRUE(handshake(node.grpc_port(), "-tls1_2"));
  EXPECT_FALSE(handshake(node.grpc_port(), "-tls1_1"));
  EXPECT_TRUE(handshake(node.http_port(), "-tls1_2"));
  EXPECT_FALSE(handshake(node.http_port(), "-tls1_1"));

  // HTTPS answers; plain HTTP does not.
  EXPECT_EQ(run(node.curl("/healthz")), "ok\n");
  EXPECT_NE(run("curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                std::to_string(node.http_port()) + "/healthz"),
            "200");
}

TEST(transport_security_test, mutual_tls_admits_only_clients_with_a_certificate_from_the_ca) {
  temp_dir dir;
  test_pki pki{dir.path() / "pki"};
  node_process node{dir.path(), {"--tls-cert-file=" + pki.node_cert.string(),
                                 "--tls-key-file=" + pki.node_key.string(),
                                 "--tls-client-ca-file=" + pki.ca_cert.string()}};
  ASSERT_TRUE(node.wait_ready()) << node.log();
  EXPECT_TRUE(node_status(node.channel_with(node.token(), true)).ok());
  EXPECT_EQ(node_status(node.channel_with(node.token(), false)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  services::channel_settings stranger;
  stranger.target = node.target();
  stranger.token = node.token();
  stranger.ca_file = pki.ca_cert.string();
  stranger.cert_file = pki.other_client_cert.string();
  stranger.key_file = pki.other_client_key.string();
  std::string error;
  EXPECT_EQ(node_status(services::make_channel(stranger, error)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(transport_security_test, no_certificate_means_no_start_unless_plaintext_is_asked_for) {
  temp_dir dir;
  child_process refused{{HEALTHTWIN_NODE_BINARY, "--grpc-listen=127.0.0.1:0", "--http-listen=127.0.0.1:0",
                         "--data-dir=" + (dir.path() / "db").string(),
                         "--auth-hs256-secret-file=/dev/null"},
                        (dir.path() / "refused.log").string()};
  EXPECT_EQ(WEXITSTATUS(refused.wait(std::chrono::seconds(30))), 2);
  EXPECT_NE(read_file(dir.path() / "refused.log").find("--tls-cert-file"), std::string::npos);

  node_process dev{dir.path() / "dev", {"--insecure-plaintext"}};
  ASSERT_TRUE(dev.wait_ready()) << dev.log();
  EXPECT_TRUE(node_status(dev.channel()).ok());
  EXPECT_NE(dev.log().find("NOT encrypted"), std::string::npos);
  EXPECT_EQ(run(dev.curl("/healthz")), "ok\n");
}

// A port another node listens on must fail to bind (exit 4), not be shared:
// gRPC's default SO_REUSEPORT would silently split connections between the
// two.
TEST(transport_security_test, a_port_another_node_holds_is_refused_not_shared) {
  temp_dir dir;
  node_process first{dir.path() / "first", {"--insecure-plaintext"}};
  ASSERT_TRUE(first.wait_ready()) << first.log();
  write_text(dir.path() / "hs256.secret", "0123456789abcdef0123456789abcdef0123456789abcdef");
  child_process second{{HEALTHTWIN_NODE_BINARY, "--insecure-plaintext",
                        "--grpc-listen=127.0.0.1:" + std::to_string(first.grpc_port()),
                        "--http-listen=127.0.0.1:0",
                        "--data-dir=" + (dir.path() / "second" / "db").string(),
                        "--auth-hs256-secret-file=" + (dir.path() / "hs256.secret").string()},
                       (dir.path() / "second.log").string()};
  EXPECT_EQ(WEXITSTATUS(second.wait(std::chrono::seconds(30))), 4);
  auto log = read_file(dir.path() / "second.log");
  EXPECT_NE(log.find("cannot listen for gRPC"), std::string::npos);
  // The phases started before it (actors among them) were undone: the
  // process ended rather than waiting for its actors forever.
  EXPECT_NE(log.find("the node did not start (api phase)"), std::string::npos) << log;
  EXPECT_TRUE(node_status(first.channel()).ok());
}

// The same for a member's peer listener: it fails after the actors, the API
// and the HTTP listener started, and the node undoes them and exits 4 —
// it neither aborts nor hangs.
TEST(transport_security_test, a_peer_port_another_node_holds_is_refused_and_the_start_undone) {
  temp_dir dir;
  node_process first{dir.path() / "first", {"--insecure-plaintext"}};
  ASSERT_TRUE(first.wait_ready()) << first.log();
  write_text(dir.path() / "hs256.secret", "0123456789abcdef0123456789abcdef0123456789abcdef");
  auto held = "127.0.0.1:" + std::to_string(first.grpc_port());
  child_process member{{HEALTHTWIN_NODE_BINARY, "--insecure-plaintext", "--node-name=b",
                        "--cluster-members=b=" + held + ",c=127.0.0.1:1", "--cluster-listen=" + held,
                        "--grpc-listen=127.0.0.1:0", "--http-listen=127.0.0.1:0",
                        "--data-dir=" + (dir.path() / "member" / "db").string(),
                        "--auth-hs256-secret-file=" + (dir.path() / "hs256.secret").string()},
                       (dir.path() / "member.log").string()};
  EXPECT_EQ(WEXITSTATUS(member.wait(std::chrono::seconds(30))), 4);
  auto log = read_file(dir.path() / "member.log");
  EXPECT_NE(log.find("cannot listen for peers"), std::string::npos) << log;
  EXPECT_NE(log.find("the node did not start (cluster phase)"), std::string::npos) << log;
  EXPECT_EQ(log.find("terminate called"), std::string::npos) << log;
  EXPECT_TRUE(node_status(first.channel()).ok());
}
