// The node configuration the Helm chart renders (helm/healthtwin) runs real
// nodes: `helm template` with the chart's defaults, the ConfigMap's
// healthtwin.toml given to three `healthtwin` processes with `--config`,
// with the pod-specific flags of the StatefulSet (--node-name, members), and
// its paths and addresses mapped to this test's files and 127.0.0.1 ports.
// They must start, form a cluster and serve a patient across members.

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/key_file.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

// The block of `key: |` in YAML text, unindented.
std::string literal_block(const std::string& yaml, const std::string& key) {
  auto at = yaml.find(key + ": |\n");
  if (at == std::string::npos)
    return {};
  std::istringstream in{yaml.substr(at + key.size() + 4)};
  std::string line, out;
  size_t indent = std::string::npos;
  while (std::getline(in, line)) {
    auto first = line.find_first_not_of(' ');
    if (indent == std::string::npos)
      indent = first;
    if (first == std::string::npos || first < indent)
      break;
    out += line.substr(indent) + "\n";
  }
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
    s.replace(at, from.size(), to);
}

// The value of an argument `--name=` in the rendered StatefulSet.
std::string arg(const std::string& yaml, const std::string& name) {
  auto at = yaml.find("- --" + name + "=");
  if (at == std::string::npos)
    return {};
  auto start = at + name.size() + 5;
  return yaml.substr(start, yaml.find('\n', start) - start);
}

}  // namespace

TEST(helm_config, the_rendered_configuration_runs_a_three_member_cluster) {
  if (!std::filesystem::exists(HEALTHTWIN_HELM_BINARY))
    GTEST_SKIP() << HEALTHTWIN_HELM_BINARY << " is missing: run tests/helm/setup (scripts/test does)";
  temp_dir root;
  auto rendered = run_command(std::string{HEALTHTWIN_HELM_BINARY} + " template ht " + HEALTHTWIN_CHART_DIR +
                              " --namespace icu");
  auto toml = literal_block(rendered, "healthtwin.toml");
  ASSERT_FALSE(toml.empty()) << rendered;
  auto set = arg(rendered, "cluster-statefulset");
  auto replicas = arg(rendered, "cluster-replicas");
  ASSERT_EQ(set, "ht-healthtwin");
  ASSERT_EQ(replicas, "3");
  EXPECT_EQ(arg(rendered, "node-name"), "$(POD_NAME)");

  // The Secrets' files, as the pods would mount them.
  test_pki pki{root.path() / "pki"};
  write_text(root.path() / "pki" / "token-signing.key", signing_key::es256()->private_pem);
  auto storage_key = write_key_file(root.path() / "pki" / "storage.key", random_key_hex());
  replace_all(toml, "/etc/healthtwin/cluster-ca/ca.crt", pki.ca_cert.string());
  replace_all(toml, "/etc/healthtwin/storage-key/node.key", storage_key);
  replace_all(toml, "0.0.0.0:", "127.0.0.1:");

  std::vector<std::string> names;
  std::vector<uint16_t> peer_ports;
  std::string members;
  for (int i = 0; i < 3; ++i) {
    names.push_back(set + "-" + std::to_string(i));
    peer_ports.push_back(free_port());
    members += (i ? "," : "") + names[i] + "=127.0.0.1:" + std::to_string(peer_ports[i]);
  }
  std::vector<std::unique_ptr<node_process>> nodes;
  for (int i = 0; i < 3; ++i) {
    auto dir = root.path() / names[static_cast<size_t>(i)];
    std::filesystem::create_directories(dir);
    std::filesystem::copy(root.path() / "pki", dir / "pki", std::filesystem::copy_options::recursive);
    auto member_toml = toml;
    replace_all(member_toml, "/etc/healthtwin/token-keys/public.pem", (dir / "pki" / "token-signing.pub").string());
    replace_all(member_toml, "/var/lib/healthtwin/data", (dir / "db").string());
    replace_all(member_toml, "/var/lib/healthtwin/backups", (dir / "backups").string());
    EXPECT_EQ(member_toml.find("/var/lib/healthtwin"), std::string::npos) << "a path of the pod left: " << member_toml;
    write_text(dir / "healthtwin.toml", member_toml);
    // The StatefulSet's flags, with its member names at this test's ports.
    nodes.push_back(std::make_unique<node_process>(
        dir, std::vector<std::string>{"--config=" + (dir / "healthtwin.toml").string(),
                                      "--node-name=" + names[static_cast<size_t>(i)], "--cluster-members=" + members,
                                      "--cluster-listen=127.0.0.1:" + std::to_string(peer_ports[static_cast<size_t>(i)]),
                                      "--shards=1024"}));
  }
  for (auto& n : nodes)
    ASSERT_TRUE(n->wait_ready()) << n->log();
  // Every member sees every other up.
  for (auto& n : nodes) {
    api_client c{n->channel()};
    bool all_up = false;
    for (int attempt = 0; attempt < 100 && !all_up; ++attempt) {
      grpc::ClientContext ctx;
      api_client::deadline(ctx);
      v1::ClusterStatus status;
      ASSERT_TRUE(c.cluster->GetClusterStatus(&ctx, {}, &status).ok());
      all_up = status.members_size() == 3 &&
               std::all_of(status.members().begin(), status.members().end(),
                           [](auto& m) { return m.state() == v1::MEMBER_STATE_UP; });
      if (!all_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(all_up) << n->log();
  }
  // A patient registered through one member is served by another.
  api_client first{nodes[0]->channel()}, last{nodes[2]->channel()};
  ASSERT_TRUE(first.create_patient("h1", "p1", "ICU-1").ok());
  ASSERT_TRUE(first.create_device("h1", "mon-1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, "tenants/h1/patients/p1").ok());
  v1::IngestResponse resp;
  ASSERT_TRUE(last.send(api_client::request("tenants/h1/devices/mon-1", {{1, now_ms() - 1000, v1::METRIC_HEART_RATE, 72}}), resp).ok());
  EXPECT_EQ(resp.accepted(), 1u);
  auto twin = last.patient_twin("tenants/h1/patients/p1");
  auto* hr = find_vital(twin, v1::METRIC_HEART_RATE);
  ASSERT_NE(hr, nullptr);
  EXPECT_EQ(hr->value(), 72);
  // The certificate expiry the chart's alert rule reads is published.
  auto metrics = run_command(nodes[0]->curl("/metrics"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics, m,
                                std::regex{R"(healthtwin_tls_certificate_expiry_timestamp_seconds\{certificate="serving"\} ([0-9.e+]+))"}))
      << metrics.substr(0, 2000);
  EXPECT_GT(std::stod(m[1]), static_cast<double>(now_ms()) / 1000);
  // ...under the name the chart's alert rule uses.
  auto rule = run_command(std::string{HEALTHTWIN_HELM_BINARY} + " template ht " + HEALTHTWIN_CHART_DIR +
                     " --namespace icu --set metrics.prometheusRule.enabled=true");
  EXPECT_NE(rule.find("healthtwin_tls_certificate_expiry_timestamp_seconds{"), std::string::npos);
  for (auto& n : nodes)
    EXPECT_EQ(n->stop(), 0) << n->log();
}
