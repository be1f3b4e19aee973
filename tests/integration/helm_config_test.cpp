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

// The indented lines from `from` on, unindented (a YAML literal block).
std::string block_at(const std::string& yaml, size_t from) {
  std::istringstream in{yaml.substr(from)};
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

// The block of `key: |` in YAML text, unindented.
std::string literal_block(const std::string& yaml, const std::string& key) {
  auto at = yaml.find(key + ": |\n");
  return at == std::string::npos ? std::string{} : block_at(yaml, at + key.size() + 4);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
    s.replace(at, from.size(), to);
}

// The `- |` script of the container or init container `name` in the
// rendered objects, unindented.
std::string script_of(const std::string& yaml, const std::string& name) {
  auto at = yaml.find("- name: " + name + "\n");
  if (at == std::string::npos)
    return {};
  at = yaml.find("- |\n", at);
  return at == std::string::npos ? std::string{} : block_at(yaml, at + 4);
}

// The value of an argument `--name=` in the rendered StatefulSet.
std::string arg(const std::string& yaml, const std::string& name) {
  auto at = yaml.find("- --" + name + "=");
  if (at == std::string::npos)
    return {};
  auto start = at + name.size() + 5;
  return yaml.substr(start, yaml.find('\n', start) - start);
}

// A cluster of `n` real nodes run from the chart rendered with `values`
// (extra `helm template` arguments) in root/<dir>: the ConfigMap's
// healthtwin.toml with the pods' paths mapped to this test's files, `swap`
// replacing more text (other regions' endpoints and CA), the StatefulSet's
// pod flags, members on 127.0.0.1 (the API on `grpc_ports` when given). The
// members share the PKI in root/<dir>/pki and the token key of `signer_dir`.
struct chart_cluster {
  std::string rendered, toml, set;
  std::vector<std::unique_ptr<node_process>> nodes;
  std::vector<std::filesystem::path> dirs;        // each member's directory
  std::vector<std::vector<std::string>> args;     // each member's flags, to start it again
  std::vector<uint16_t> ports;                    // each member's API port (0: its own choice)

  chart_cluster(const std::filesystem::path& root, const std::string& dir, const std::string& values,
                const std::filesystem::path& signer_dir, std::vector<uint16_t> grpc_ports = {},
                const std::vector<std::pair<std::string, std::string>>& swap = {}) {
    rendered = run_command(std::string{HEALTHTWIN_HELM_BINARY} + " template ht " + HEALTHTWIN_CHART_DIR +
                           " --namespace icu " + values);
    toml = literal_block(rendered, "healthtwin.toml");
    set = arg(rendered, "cluster-statefulset");
    auto pki_dir = root / dir / "pki";
    test_pki pki{pki_dir};
    std::filesystem::copy_file(signer_dir / "token-signing.key", pki_dir / "token-signing.key",
                               std::filesystem::copy_options::overwrite_existing);
    auto storage_key = write_key_file(pki_dir / "storage.key", random_key_hex());
    auto shared = toml;
    replace_all(shared, "/etc/healthtwin/cluster-ca/ca.crt", pki.ca_cert.string());
    replace_all(shared, "/etc/healthtwin/storage-key/node.key", storage_key);
    replace_all(shared, "0.0.0.0:", "127.0.0.1:");
    for (auto& [from, to] : swap)
      replace_all(shared, from, to);
    size_t n = grpc_ports.empty() ? 3 : grpc_ports.size();
    std::vector<std::string> names;
    std::vector<uint16_t> peer_ports;
    std::string members;
    for (size_t i = 0; i < n; ++i) {
      names.push_back(set + "-" + std::to_string(i));
      peer_ports.push_back(free_port());
      members += (i ? "," : "") + names[i] + "=127.0.0.1:" + std::to_string(peer_ports[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      auto member_dir = root / dir / names[i];
      std::filesystem::create_directories(member_dir);
      std::filesystem::copy(pki_dir, member_dir / "pki", std::filesystem::copy_options::recursive);
      auto member_toml = shared;
      replace_all(member_toml, "/etc/healthtwin/token-keys/public.pem",
                  (member_dir / "pki" / "token-signing.pub").string());
      replace_all(member_toml, "/var/lib/healthtwin/data", (member_dir / "db").string());
      replace_all(member_toml, "/var/lib/healthtwin/backups", (member_dir / "backups").string());
      EXPECT_EQ(member_toml.find("/var/lib/healthtwin"), std::string::npos) << "a path of the pod left: " << member_toml;
      EXPECT_EQ(member_toml.find("/etc/healthtwin"), std::string::npos) << "a path of the pod left: " << member_toml;
      write_text(member_dir / "healthtwin.toml", member_toml);
      dirs.push_back(member_dir);
      args.push_back({"--config=" + (member_dir / "healthtwin.toml").string(), "--node-name=" + names[i],
                      "--cluster-members=" + members,
                      "--cluster-listen=127.0.0.1:" + std::to_string(peer_ports[i]), "--shards=1024"});
      ports.push_back(grpc_ports.empty() ? 0 : grpc_ports[i]);
      nodes.push_back(std::make_unique<node_process>(member_dir, args.back(), ports.back()));
    }
  }

  // Every member ready and seeing every other up.
  void wait_formed(const std::string& issuer = {}) {
    for (auto& n : nodes)
      ASSERT_TRUE(n->wait_ready()) << n->log();
    for (auto& n : nodes) {
      api_client c{n->channel_with(token(*n, "h1", issuer))};
      bool all_up = false;
      for (int attempt = 0; attempt < 100 && !all_up; ++attempt) {
        grpc::ClientContext ctx;
        api_client::deadline(ctx);
        v1::ClusterStatus status;
        ASSERT_TRUE(c.cluster->GetClusterStatus(&ctx, {}, &status).ok());
        all_up = status.members_size() == static_cast<int>(nodes.size()) &&
                 std::all_of(status.members().begin(), status.members().end(),
                             [](auto& m) { return m.state() == v1::MEMBER_STATE_UP; });
        if (!all_up)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      EXPECT_TRUE(all_up) << n->log();
    }
  }

  // A token of every user role in `tenant`, naming `issuer` when given.
  static std::string token(const node_process& n, const std::string& tenant, const std::string& issuer) {
    auto claims = token_claims("test-client", tenant, all_user_roles());
    if (!issuer.empty())
      claims["iss"] = issuer;
    return n.signer().sign(claims);
  }
};

}  // namespace

TEST(helm_config, the_rendered_configuration_runs_a_three_member_cluster) {
  if (!std::filesystem::exists(HEALTHTWIN_HELM_BINARY))
    GTEST_SKIP() << HEALTHTWIN_HELM_BINARY << " is missing: run tests/helm/setup (scripts/test does)";
  temp_dir root;
  write_text(root.path() / "token-signing.key", signing_key::es256()->private_pem);
  chart_cluster cluster{root.path(), "cluster", "", root.path()};
  ASSERT_FALSE(cluster.toml.empty()) << cluster.rendered;
  ASSERT_EQ(cluster.set, "ht-healthtwin");
  ASSERT_EQ(arg(cluster.rendered, "cluster-replicas"), "3");
  EXPECT_EQ(arg(cluster.rendered, "node-name"), "$(POD_NAME)");
  cluster.wait_formed();
  auto& nodes = cluster.nodes;
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

// The region files (helm/regions) run two regions of three members each:
// eu-central forwards, us-east redirects. A patient created through
// eu-central with home us-east is stored in us-east only — read through
// eu-central, its data in no file of eu-central — and us-east names
// eu-central, with its endpoint, for a patient homed there.
TEST(helm_config, the_region_files_run_two_regions_that_keep_each_patient_home) {
  if (!std::filesystem::exists(HEALTHTWIN_HELM_BINARY))
    GTEST_SKIP() << HEALTHTWIN_HELM_BINARY << " is missing: run tests/helm/setup (scripts/test does)";
  const std::string issuer = "https://idp.hospital.example";  // both region files name it
  temp_dir root;
  write_text(root.path() / "token-signing.key", signing_key::es256()->private_pem);
  std::vector<uint16_t> eu_ports, us_ports;
  for (int i = 0; i < 3; ++i) {
    eu_ports.push_back(free_port());
    us_ports.push_back(free_port());
  }
  test_pki eu_pki{root.path() / "eu" / "pki"}, us_pki{root.path() / "us" / "pki"};  // a CA per region
  auto region_ca = "/etc/healthtwin/region-ca/ca.crt";
  // The files must be scanned in plain: the storage key becomes the key of
  // the pseudonyms only (encryption at rest would hide every marker).
  std::pair<std::string, std::string> plain_files{"encryption-key-file", "pseudonym-key-file"};
  auto eu_endpoint = "127.0.0.1:" + std::to_string(eu_ports[0]);
  chart_cluster eu{root.path(), "eu", std::string{"-f "} + HEALTHTWIN_REGIONS_DIR + "/eu-central.yaml",
                   root.path(), eu_ports,
                   {{"healthtwin.us-east.hospital.example:50051", "127.0.0.1:" + std::to_string(us_ports[0])},
                    {region_ca, us_pki.ca_cert.string()}, plain_files}};
  chart_cluster us{root.path(), "us", std::string{"-f "} + HEALTHTWIN_REGIONS_DIR + "/us-east.yaml",
                   root.path(), us_ports,
                   {{"healthtwin.eu-central.hospital.example:50051", eu_endpoint},
                    {region_ca, eu_pki.ca_cert.string()}, plain_files}};
  ASSERT_NE(eu.toml.find("region-routing = \"forward\""), std::string::npos) << eu.toml;
  ASSERT_NE(us.toml.find("region-routing = \"redirect\""), std::string::npos) << us.toml;
  eu.wait_formed(issuer);
  us.wait_formed(issuer);
  auto client = [&](chart_cluster& c, size_t i) {
    return std::make_unique<api_client>(c.nodes[i]->channel_with(chart_cluster::token(*c.nodes[i], "h1", issuer)));
  };
  auto eu1 = client(eu, 1), eu2 = client(eu, 2), us0 = client(us, 0), us2 = client(us, 2);

  // Created through eu-central, homed in us-east: registered there.
  const std::string ward = "ward-resid-6120", pid = "p-resid-8841", device = "mon-resid-8841";
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::CreatePatientRequest req;
    req.set_parent("tenants/h1");
    req.set_patient_id(pid);
    req.mutable_patient()->set_ward(ward);
    req.mutable_patient()->set_home_region("us-east");
    v1::Patient out;
    auto st = eu1->registry->CreatePatient(&ctx, req, &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(out.home_region(), "us-east");
  }
  ASSERT_TRUE(us2->create_device("h1", device, v1::DEVICE_TYPE_BEDSIDE_MONITOR, "tenants/h1/patients/" + pid).ok());
  v1::IngestResponse resp;
  ASSERT_TRUE(us0->send(api_client::request("tenants/h1/devices/" + device,
                                            {{1, now_ms() - 1000, v1::METRIC_HEART_RATE, 77}}), resp).ok());
  EXPECT_EQ(resp.accepted(), 1u);
  auto twin = eu2->patient_twin("tenants/h1/patients/" + pid);  // forwarded to us-east
  EXPECT_EQ(twin.ward(), ward);
  auto* hr = find_vital(twin, v1::METRIC_HEART_RATE);
  ASSERT_NE(hr, nullptr);
  EXPECT_EQ(hr->value(), 77);

  // Homed in eu-central: us-east redirects, naming the region and its endpoint.
  ASSERT_TRUE(eu1->create_patient("h1", "p-eu-1", "W1").ok());
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::GetPatientRequest req;
    req.set_name("tenants/h1/patients/p-eu-1");
    v1::Patient out;
    auto st = us2->registry->GetPatient(&ctx, req, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_NE(st.error_message().find("region eu-central"), std::string::npos) << st.error_message();
    EXPECT_NE(st.error_message().find(eu_endpoint), std::string::npos) << st.error_message();
  }

  // Stopped (every byte in the files): eu-central's files hold nothing of the
  // us-east patient; us-east's do (the scan can see them).
  for (auto* c : {&eu, &us})
    for (auto& n : c->nodes)
      EXPECT_EQ(n->stop(), 0) << n->log();
  auto holds = [&](const std::filesystem::path& dir) {
    std::set<std::string> hits;
    for (auto& f : std::filesystem::recursive_directory_iterator(dir))
      if (f.is_regular_file()) {
        auto data = read_file(f.path());
        for (auto& marker : {ward, pid, device})
          if (data.find(marker) != std::string::npos)
            hits.insert(marker + " in " + f.path().string());
      }
    return hits;
  };
  EXPECT_EQ(holds(root.path() / "eu"), std::set<std::string>{});
  EXPECT_FALSE(holds(root.path() / "us").empty())
      << "the markers are not found in us-east's own files: the scan proves nothing";
}

// The standby values (docs/multi-region.md, "Disaster recovery"): the
// follower the chart renders with standby.follow, run as its pod would run
// it, keeps copies of a running member; the init container it renders with
// standby.promote makes the newest copy the member's data directory, and the
// member, started again with the chart's configuration, has its patient.
TEST(helm_config, a_standby_release_follows_a_member_and_promotion_starts_it_on_the_copy) {
  if (!std::filesystem::exists(HEALTHTWIN_HELM_BINARY))
    GTEST_SKIP() << HEALTHTWIN_HELM_BINARY << " is missing: run tests/helm/setup (scripts/test does)";
  temp_dir root;
  write_text(root.path() / "token-signing.key", signing_key::es256()->private_pem);
  auto port = free_port();
  chart_cluster primary{root.path(), "primary", "", root.path(), {port}};
  primary.wait_formed();
  {
    api_client c{primary.nodes[0]->channel()};
    ASSERT_TRUE(c.create_patient("h1", "p1", "ICU-1").ok());
  }
  auto helm = std::string{HEALTHTWIN_HELM_BINARY} + " template ht " + HEALTHTWIN_CHART_DIR + " --namespace icu ";
  auto standby = run_command(helm + "--set standby.follow={127.0.0.1:" + std::to_string(port) +
                             "} --set standby.tokenSecretName=dr-token --set standby.caSecretName=eu-ca "
                             "--set standby.intervalSeconds=1 --set metrics.prometheusRule.enabled=true");
  EXPECT_EQ(standby.find("- name: healthtwin\n"), std::string::npos) << "no node runs in a standby";
  EXPECT_EQ(standby.find("kind: PrometheusRule"), std::string::npos) << "no member-down alerts for followers";
  auto follow = script_of(standby, "follower");
  ASSERT_FALSE(follow.empty()) << standby;
  auto dr = root.path() / "standby" / "ht-healthtwin-0";  // the member's volume in the standby region
  std::filesystem::create_directories(dr);
  auto token = dr.parent_path() / "token";
  write_text(token, chart_cluster::token(*primary.nodes[0], "h1", ""));
  replace_all(follow, "/usr/local/bin/twinctl", HEALTHTWIN_TWINCTL_BINARY);
  replace_all(follow, "/var/lib/healthtwin", dr.string());
  replace_all(follow, "/etc/healthtwin/standby-token/token", token.string());
  replace_all(follow, "/etc/healthtwin/standby-ca/ca.crt", (primary.dirs[0] / "pki" / "ca.pem").string());
  EXPECT_EQ(follow.find("/etc/healthtwin"), std::string::npos) << follow;
  auto sources = standby.substr(standby.find("name: SOURCES"));
  sources = sources.substr(sources.find("value: \"") + 8);
  sources = sources.substr(0, sources.find('"'));
  EXPECT_EQ(sources, "127.0.0.1:" + std::to_string(port));
  {
    child_process follower{{"/usr/bin/env", "POD_NAME=ht-healthtwin-0", "SOURCES=" + sources, "/bin/sh", "-c", follow},
                           (dr.parent_path() / "follower.log").string()};
    for (int i = 0; i < 300 && !std::filesystem::exists(dr / "standby" / "copy-000002.json"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(std::filesystem::exists(dr / "standby" / "copy-000002.json"))
        << read_file(dr.parent_path() / "follower.log");
    EXPECT_EQ(follower.kill(SIGTERM), 0) << "the follower ends cleanly on SIGTERM";
  }
  EXPECT_EQ(primary.nodes[0]->stop(), 0) << primary.nodes[0]->log();

  // The primary region is gone; the standby release is switched to nodes that promote.
  auto promoted = run_command(helm + "--set standby.promote=true");
  auto promote = script_of(promoted, "promote-standby");
  ASSERT_FALSE(promote.empty()) << promoted;
  replace_all(promote, "/usr/local/bin/twinctl", HEALTHTWIN_TWINCTL_BINARY);
  replace_all(promote, "/var/lib/healthtwin", dr.string());
  write_text(dr.parent_path() / "promote.sh", promote);
  auto said = run_command("/bin/sh " + (dr.parent_path() / "promote.sh").string() + "; echo exit=$?");
  EXPECT_NE(said.find("exit=0"), std::string::npos) << said;
  EXPECT_NE(said.find("promoted copy"), std::string::npos) << said;
  ASSERT_TRUE(std::filesystem::exists(dr / "data" / "CURRENT"));
  said = run_command("/bin/sh " + (dr.parent_path() / "promote.sh").string() + "; echo exit=$?");
  EXPECT_NE(said.find("exit=0"), std::string::npos) << "a later start leaves the data alone: " << said;
  EXPECT_EQ(said.find("promoted"), std::string::npos) << said;

  // The member starts on the promoted copy with the chart's configuration and its keys.
  std::filesystem::remove_all(primary.dirs[0] / "db");
  std::filesystem::rename(dr / "data", primary.dirs[0] / "db");
  primary.nodes[0] = std::make_unique<node_process>(primary.dirs[0], primary.args[0], primary.ports[0]);
  ASSERT_TRUE(primary.nodes[0]->wait_ready()) << primary.nodes[0]->log();
  api_client c{primary.nodes[0]->channel()};
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::GetPatientRequest get;
  get.set_name("tenants/h1/patients/p1");
  v1::Patient patient;
  auto st = c.registry->GetPatient(&ctx, get, &patient);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(patient.ward(), "ICU-1");
  EXPECT_EQ(primary.nodes[0]->stop(), 0) << primary.nodes[0]->log();
}
