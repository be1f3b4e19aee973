#include "services/node/tls_stage.hpp"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "services/grpc/read_file.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"

using namespace healthtwin;
namespace fs = std::filesystem;

namespace {

void replace_with(const fs::path& from, const fs::path& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

}  // namespace

TEST(tls_stage, files_that_do_not_load_are_named) {
  healthtwin::testing::temp_dir dir;
  healthtwin::testing::test_pki pki{dir.path() / "pki"};
  EXPECT_EQ(node::check_tls_files({pki.node_cert, pki.node_key, pki.ca_cert}), "");
  EXPECT_EQ(node::check_tls_files({pki.node_cert, pki.client_key, ""}), "the key does not belong to the certificate");
  EXPECT_EQ(node::check_tls_files({pki.node_key, pki.node_key, ""}), "the certificate is not a PEM certificate chain");
  EXPECT_EQ(node::check_tls_files({pki.node_cert, pki.node_cert, ""}), "the key is not a PEM private key");
  EXPECT_EQ(node::check_tls_files({(dir.path() / "none").string(), pki.node_key, ""}),
            "the certificate cannot be read");
  EXPECT_EQ(node::check_tls_files({pki.node_cert, pki.node_key, pki.node_key}),
            "the CA file is not a list of PEM certificates");
}

TEST(tls_stage, the_copy_follows_changes_that_load_and_only_those) {
  healthtwin::testing::temp_dir dir;
  healthtwin::testing::test_pki pki{dir.path() / "pki"};
  auto cert = dir.path() / "tls.crt", key = dir.path() / "tls.key";
  replace_with(pki.node_cert, cert);
  replace_with(pki.node_key, key);
  std::string error;
  auto stage = node::tls_stage::open({cert, key, pki.ca_cert}, std::chrono::seconds(0), error);
  ASSERT_TRUE(stage) << error;
  auto staged = stage->staged();
  EXPECT_EQ(services::read_file(staged.cert), services::read_file(pki.node_cert));
  EXPECT_EQ(services::read_file(staged.ca), services::read_file(pki.ca_cert));
  EXPECT_EQ(fs::status(fs::path{staged.key}).permissions() & fs::perms::group_all, fs::perms::none);

  replace_with(pki.client_cert, cert);  // half-way: the new certificate, the old key
  stage->refresh();
  EXPECT_EQ(services::read_file(staged.cert), services::read_file(pki.node_cert));
  replace_with(pki.client_key, key);  // now both
  stage->refresh();
  EXPECT_EQ(services::read_file(staged.cert), services::read_file(pki.client_cert));
  EXPECT_EQ(services::read_file(staged.key), services::read_file(pki.client_key));

  std::ofstream{key} << "garbage";
  EXPECT_FALSE(node::tls_stage::open({cert, key, ""}, std::chrono::seconds(0), error));
  EXPECT_NE(error.find("the key is not a PEM private key"), std::string::npos) << error;
  auto root = fs::path{staged.cert}.parent_path().parent_path();
  stage.reset();
  EXPECT_FALSE(fs::exists(root));  // the copy goes with the node
}
