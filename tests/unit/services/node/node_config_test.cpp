#include "services/node/node_config.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"

using namespace healthtwin::node;

namespace {

// A file that exists, for options that check for one.
const std::string& some_file() {
  static healthtwin::testing::temp_dir dir;
  static std::string path = [] {
    auto p = dir.str() + "/file";
    std::ofstream{p} << "x";
    return p;
  }();
  return path;
}

// Parses `args`; unless `bare`, with the development transport and token
// settings every node needs.
parse_outcome parse(std::vector<std::string> args, bool bare = false) {
  if (!bare) {
    args.insert(args.begin(), "--auth-hs256-secret-file=" + some_file());
    args.insert(args.begin(), "--insecure-plaintext");
  }
  args.insert(args.begin(), "healthtwin");
  return parse_node_config(args);
}

}  // namespace

TEST(node_config, defaults_bind_loopback_and_sync_the_wal) {
  auto out = parse({});
  ASSERT_TRUE(out.config);
  EXPECT_EQ(out.config->grpc_listen, "127.0.0.1:50051");
  EXPECT_EQ(out.config->http_listen, "127.0.0.1:8080");
  EXPECT_EQ(out.config->shards, 1024u);
  EXPECT_TRUE(out.config->sync_wal);
  EXPECT_FALSE(out.config->node_name.empty());
}

TEST(node_config, flags_set_every_option) {
  auto out = parse({"--grpc-listen=127.0.0.1:0", "--http-listen=[::1]:9000", "--data-dir=/tmp/x",
                    "--shards=64", "--sync-wal=false", "--scheduler-threads=4",
                    "--checkpoint-interval-ms=1000", "--heartbeat-timeout-ms=5000",
                    "--max-clock-skew-ms=0", "--node-name=n1", "--port-file=/tmp/p",
                    "--log-level=debug", "--alert-escalate-after-ms=3000",
                    "--device-check-interval-ms=500", "--retention-raw-days=7",
                    "--retention-alert-days=100", "--retention-tenant=h2=90:2192",
                    "--retention-interval-ms=1000", "--passivate-after-ms=0"});
  ASSERT_TRUE(out.config) << out.message;
  auto& c = *out.config;
  EXPECT_EQ(c.alert_escalate_after.count(), 3000);
  EXPECT_EQ(c.device_check_interval.count(), 500);
  EXPECT_EQ(c.passivate_after.count(), 0);
  EXPECT_EQ(parse({}).config->passivate_after.count(), 600'000);
  EXPECT_EQ(c.retention_raw_days, 7);
  EXPECT_EQ(c.retention_alert_days, 100);
  ASSERT_EQ(c.retention_tenants.size(), 1u);
  EXPECT_EQ(c.retention_tenants[0], "h2=90:2192");
  EXPECT_EQ(c.retention_interval.count(), 1000);
  EXPECT_EQ(c.grpc_listen, "127.0.0.1:0");
  EXPECT_EQ(c.http_listen, "[::1]:9000");
  EXPECT_EQ(c.data_dir, "/tmp/x");
  EXPECT_EQ(c.shards, 64u);
  EXPECT_FALSE(c.sync_wal);
  EXPECT_EQ(c.scheduler_threads, 4u);
  EXPECT_EQ(c.checkpoint_interval.count(), 1000);
  EXPECT_EQ(c.heartbeat_timeout.count(), 5000);
  EXPECT_EQ(c.max_clock_skew.count(), 0);
  EXPECT_EQ(c.node_name, "n1");
  EXPECT_EQ(c.port_file, "/tmp/p");
  EXPECT_EQ(c.log_level, "debug");
}

TEST(node_config, config_file_is_read_and_flags_win) {
  healthtwin::testing::temp_dir dir;
  auto path = dir.str() + "/node.toml";
  std::ofstream{path} << "shards = 32\ndata-dir = \"/var/lib/ht\"\nsync-wal = false\n";
  auto out = parse({"--config=" + path, "--shards=16"});
  ASSERT_TRUE(out.config) << out.message;
  EXPECT_EQ(out.config->shards, 16u);
  EXPECT_EQ(out.config->data_dir, "/var/lib/ht");
  EXPECT_FALSE(out.config->sync_wal);
}

TEST(node_config, errors_name_the_option_and_exit_with_2) {
  auto check = [](parse_outcome out, const std::string& mention) {
    EXPECT_FALSE(out.config);
    EXPECT_EQ(out.exit_code, 2);
    EXPECT_NE(out.message.find(mention), std::string::npos) << out.message;
  };
  check(parse({"--shards=0"}), "--shards");
  check(parse({"--shards=70000"}), "--shards");
  check(parse({"--grpc-listen=localhost"}), "--grpc-listen");
  check(parse({"--http-listen=127.0.0.1:99999"}), "--http-listen");
  check(parse({"--log-level=chatty"}), "--log-level");
  check(parse({"--checkpoint-interval-ms=5"}), "--checkpoint-interval-ms");
  check(parse({"--alert-escalate-after-ms=10"}), "--alert-escalate-after-ms");
  check(parse({"--device-check-interval-ms=0"}), "--device-check-interval-ms");
  check(parse({"--passivate-after-ms=-1"}), "--passivate-after-ms");
  check(parse({"--passivate-after-ms=86400001"}), "--passivate-after-ms");
  check(parse({"--retention-raw-days=0"}), "--retention-raw-days");
  check(parse({"--retention-tenant=h2"}), "--retention-tenant");
  check(parse({"--retention-tenant=h2=x:5"}), "--retention-tenant");
  check(parse({"--no-such-flag"}), "--no-such-flag");
  check(parse({"--data-dir="}), "--data-dir");
  check(parse({"--config=/nonexistent/node.toml"}), "node.toml");
  healthtwin::testing::temp_dir dir;
  auto path = dir.str() + "/bad.toml";
  std::ofstream{path} << "shardz = 3\n";
  check(parse({"--config=" + path}), "shardz");
}

TEST(node_config, transport_security_and_tokens_are_required_and_consistent) {
  auto check = [](parse_outcome out, const std::string& mention) {
    EXPECT_FALSE(out.config);
    EXPECT_EQ(out.exit_code, 2);
    EXPECT_NE(out.message.find(mention), std::string::npos) << out.message;
  };
  auto f = some_file();
  auto secret = "--auth-hs256-secret-file=" + f;
  check(parse({secret}, true), "--tls-cert-file");
  check(parse({"--insecure-plaintext"}, true), "set exactly one");
  check(parse({"--insecure-plaintext", secret, "--auth-jwks-file=" + f}, true), "set exactly one");
  check(parse({secret, "--tls-cert-file=" + f}, true), "set both or neither");
  check(parse({secret, "--tls-cert-file=" + f, "--tls-key-file=" + f, "--insecure-plaintext"}, true),
        "--insecure-plaintext");
  check(parse({secret, "--insecure-plaintext", "--tls-client-ca-file=" + f}, true),
        "--tls-client-ca-file");
  check(parse({"--insecure-plaintext", "--auth-public-key-file=/no/such/key.pem"}, true),
        "--auth-public-key-file");
  auto ok = parse({"--tls-cert-file=" + f, "--tls-key-file=" + f, "--tls-client-ca-file=" + f,
                   "--auth-public-key-file=" + f, "--auth-audience=ht-prod", "--auth-issuer=idp"},
                  true);
  ASSERT_TRUE(ok.config) << ok.message;
  EXPECT_EQ(ok.config->tls_client_ca_file, f);
  EXPECT_EQ(ok.config->auth_audience, "ht-prod");
  EXPECT_EQ(ok.config->auth_issuer, "idp");
  EXPECT_FALSE(ok.config->insecure_plaintext);
}

TEST(node_config, rate_limits_are_positive) {
  auto out = parse({"--rate-limit-calls-per-s=50", "--rate-limit-readings-per-s=2000",
                    "--rate-limit-device-readings-per-s=20"});
  ASSERT_TRUE(out.config) << out.message;
  EXPECT_EQ(out.config->rate_limit_calls_per_s, 50);
  EXPECT_EQ(out.config->rate_limit_readings_per_s, 2000);
  EXPECT_EQ(out.config->rate_limit_device_readings_per_s, 20);
  EXPECT_FALSE(parse({"--rate-limit-device-readings-per-s=0"}).config);
  EXPECT_NE(parse({"--rate-limit-calls-per-s=-1"}).message.find("--rate-limit-calls-per-s"), std::string::npos);
}

TEST(node_config, regions_name_this_one_and_the_others_endpoints) {
  auto out = parse({"--region=eu-central", "--region-endpoints=us-east=ht.us.example:443,ap-south=10.0.0.9:8443",
                    "--region-routing=forward"});
  ASSERT_TRUE(out.config) << out.message;
  EXPECT_EQ(out.config->region, "eu-central");
  EXPECT_EQ(out.config->region_endpoints.size(), 2u);
  EXPECT_EQ(out.config->region_endpoints.at("us-east"), "ht.us.example:443");
  EXPECT_EQ(out.config->region_endpoints.at("ap-south"), "10.0.0.9:8443");
  EXPECT_TRUE(out.config->region_forward);
  auto plain = parse({"--region=eu-central"});
  ASSERT_TRUE(plain.config);
  EXPECT_FALSE(plain.config->region_forward);  // redirect by default
  EXPECT_TRUE(plain.config->region_endpoints.empty());
  EXPECT_TRUE(parse({}).config->region.empty());
  // Each refusal names the option and quotes at most a bounded prefix.
  for (auto [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--region=EU_Central"}, "--region:"},
           {{"--region-endpoints=us-east=h:1"}, "needs --region"},
           {{"--region=eu", "--region-endpoints=us-east"}, "REGION=HOST:PORT"},
           {{"--region=eu", "--region-endpoints=eu=h:1"}, "own region"},
           {{"--region=eu", "--region-endpoints=us=h:1,us=g:2"}, "listed twice"},
           {{"--region=eu", "--region-endpoints=us=nohost"}, "HOST:PORT"},
           {{"--region=eu", "--region-endpoints=Us=h:1"}, "1-63 characters"},
           {{"--region=eu", "--region-routing=sideways"}, "--region-routing"}}) {
    auto bad = parse(args);
    EXPECT_FALSE(bad.config) << says;
    EXPECT_NE(bad.message.find(says), std::string::npos) << bad.message;
  }
  auto long_one = parse({"--region=eu", "--region-endpoints=" + std::string(5000, 'x')});
  EXPECT_FALSE(long_one.config);
  EXPECT_LT(long_one.message.size(), 200u) << long_one.message;
}

TEST(node_config, help_lists_the_options_and_exits_0) {
  auto out = parse({"--help"});
  EXPECT_FALSE(out.config);
  EXPECT_EQ(out.exit_code, 0);
  for (auto opt : {"--grpc-listen", "--data-dir", "--shards", "--sync-wal", "--config"})
    EXPECT_NE(out.message.find(opt), std::string::npos) << opt;
}

TEST(node_config, splits_host_and_port) {
  EXPECT_EQ(split_host_port("127.0.0.1:50051"), std::make_optional(std::make_pair(std::string{"127.0.0.1"}, uint16_t{50051})));
  EXPECT_EQ(split_host_port("[::1]:0")->first, "[::1]");
  EXPECT_FALSE(split_host_port(":80"));
  EXPECT_FALSE(split_host_port("host:"));
  EXPECT_FALSE(split_host_port("host:65536"));
  EXPECT_FALSE(split_host_port("host:8a"));
  EXPECT_FALSE(split_host_port("[::1:80"));
}

TEST(node_config, cluster_members_come_from_a_list_or_a_statefulset) {
  auto out = parse({"--node-name=b", "--cluster-members=a=10.0.0.1:7000,b=10.0.0.2:7000",
                    "--cluster-listen=0.0.0.0:7000"});
  ASSERT_TRUE(out.config) << out.message;
  ASSERT_EQ(out.config->cluster_members.size(), 2u);
  EXPECT_EQ(out.config->cluster_members[1].address, "10.0.0.2:7000");

  out = parse({"--node-name=healthtwin-1", "--cluster-statefulset=healthtwin",
               "--cluster-service=healthtwin-peers", "--cluster-replicas=3",
               "--cluster-listen=0.0.0.0:7000"});
  ASSERT_TRUE(out.config) << out.message;
  ASSERT_EQ(out.config->cluster_members.size(), 3u);
  EXPECT_EQ(out.config->cluster_members[0].address, "healthtwin-0.healthtwin-peers:7000");

  auto refused = [](std::vector<std::string> args, const std::string& naming) {
    auto r = parse(std::move(args));
    EXPECT_FALSE(r.config) << naming;
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.message.find(naming), std::string::npos) << r.message;
  };
  refused({"--node-name=c", "--cluster-members=a=h:1,b=h:2", "--cluster-listen=0.0.0.0:1"},
          "--cluster-members: --node-name \"c\" is not among them");
  refused({"--node-name=a", "--cluster-members=a=h:1,b"}, "--cluster-members: member \"b\"");
  refused({"--node-name=a", "--cluster-members=a=h:1,b=h:2"}, "--cluster-listen");
  refused({"--node-name=a", "--cluster-statefulset=s", "--cluster-listen=0.0.0.0:1"},
          "--cluster-statefulset: needs --cluster-service");
  // With TLS the members need the CA that signed their certificates.
  auto tls = parse({"--node-name=a", "--cluster-members=a=h:1,b=h:2", "--cluster-listen=0.0.0.0:1",
                    "--tls-cert-file=" + some_file(), "--tls-key-file=" + some_file(),
                    "--auth-public-key-file=" + some_file()},
                   true);
  EXPECT_FALSE(tls.config);
  EXPECT_NE(tls.message.find("--cluster-ca-file"), std::string::npos) << tls.message;
}

TEST(node_config, a_statefulsets_pods_run_each_member_and_the_standbys_of_the_members_before_it) {
  auto f = some_file();
  auto pod = [&](const std::string& name, uint32_t rank, std::vector<std::string> extra = {}) {
    auto step = 100 * rank;
    std::vector<std::string> args{"--tls-cert-file=" + f, "--tls-key-file=" + f, "--auth-hs256-secret-file=" + f,
                                  "--cluster-ca-file=" + f, "--encryption-key-file=" + f, "--node-name=" + name,
                                  "--cluster-statefulset=ht", "--cluster-service=ht-peers", "--cluster-replicas=3",
                                  "--cluster-listen=0.0.0.0:" + std::to_string(50052 + step),
                                  "--replication-factor=3",
                                  "--replication-listen=0.0.0.0:" + std::to_string(50053 + step),
                                  "--replication-standby-rank=" + std::to_string(rank)};
    for (auto& e : extra)
      args.push_back(e);
    return parse(args, true);
  };
  auto member = pod("ht-1", 0);
  ASSERT_TRUE(member.config) << member.message;
  auto& c = *member.config;
  EXPECT_EQ(c.node_name, "ht-1");
  EXPECT_EQ(c.replication_self, "ht-1");
  ASSERT_EQ(c.replication_members.size(), 3u);
  EXPECT_EQ(c.replication_members[0].address, "ht-1.ht-peers:50053");
  EXPECT_EQ(c.replication_members[1].name, "ht-1@ht-2");
  EXPECT_EQ(c.replication_members[1].address, "ht-2.ht-peers:50153");
  EXPECT_EQ(c.replication_members[2].name, "ht-1@ht-0");
  EXPECT_EQ(c.replication_members[2].address, "ht-0.ht-peers:50253");
  EXPECT_EQ(c.cluster_members[0].address, "ht-0.ht-peers:50052");
  ASSERT_EQ(c.cluster_standbys.size(), 6u);
  EXPECT_EQ(c.cluster_standbys[0].name, "ht-0");
  EXPECT_EQ(c.cluster_standbys[0].address, "ht-1.ht-peers:50152");
  EXPECT_EQ(c.cluster_standbys[5].name, "ht-2");
  EXPECT_EQ(c.cluster_standbys[5].address, "ht-1.ht-peers:50252");

  // Pod ht-0's rank-2 container is the standby of ht-1 (two pods before, around the ring).
  auto standby = pod("ht-0", 2);
  ASSERT_TRUE(standby.config) << standby.message;
  EXPECT_EQ(standby.config->node_name, "ht-1");
  EXPECT_EQ(standby.config->replication_self, "ht-1@ht-0");
  EXPECT_EQ(standby.config->replication_members[2].address, "ht-0.ht-peers:50253") << "its own listener";
  EXPECT_EQ(standby.config->cluster_members[1].address, "ht-1.ht-peers:50052") << "the members' own ports";

  auto refused = [](parse_outcome o, const std::string& says) {
    EXPECT_FALSE(o.config);
    EXPECT_NE(o.message.find(says), std::string::npos) << o.message;
  };
  refused(pod("ht-7", 0), "is not a pod of StatefulSet ht");
  refused(pod("other-1", 0), "is not a pod of StatefulSet ht");
  refused(pod("ht-1", 3), "is not below --replication-factor 3");
  refused(pod("ht-1", 0, {"--replication-members=a=h:1"}), "the StatefulSet's layout names them");
  refused(parse({"--replication-standby-rank=1"}), "only with --cluster-statefulset");
}

TEST(node_config, a_replicated_store_lists_its_voters_the_member_and_its_standbys) {
  auto f = some_file();
  auto secure = [&](std::vector<std::string> args) {
    for (std::string a : std::vector<std::string>{"--tls-cert-file=" + f, "--tls-key-file=" + f, "--auth-hs256-secret-file=" + f,
                   "--cluster-ca-file=" + f, "--cluster-listen=0.0.0.0:7000", "--node-name=b",
                   std::string{"--cluster-members=a=10.0.0.1:7000,b=10.0.0.2:7000,c=10.0.0.3:7000"}})
      args.push_back(a);
    return parse(args, true);
  };
  auto key = "--encryption-key-file=" + f;
  std::string voters = "--replication-members=b=10.0.0.2:7100,b@c=10.0.0.3:7101,b@a=10.0.0.1:7101";
  auto out = secure({"--replication-factor=3", "--replication-listen=0.0.0.0:7100", key, voters,
                     "--replication-election-ms=500", "--replication-commit-timeout-ms=3000",
                     "--cluster-standbys=a=10.0.0.2:7001,a=10.0.0.3:7002,b=10.0.0.3:7001"});
  ASSERT_TRUE(out.config) << out.message;
  auto& c = *out.config;
  EXPECT_EQ(c.replication_factor, 3u);
  ASSERT_EQ(c.replication_members.size(), 3u);
  EXPECT_EQ(c.replication_members[1].name, "b@c");
  EXPECT_EQ(c.replication_members[1].address, "10.0.0.3:7101");
  EXPECT_EQ(c.replication_self, "b") << "the member itself by default";
  ASSERT_EQ(c.cluster_standbys.size(), 3u) << "a member may have several standbys";
  EXPECT_EQ(c.cluster_standbys[1].name, "a");
  EXPECT_EQ(c.cluster_standbys[1].address, "10.0.0.3:7002");
  EXPECT_EQ(c.replication_election_timeout.count(), 500);
  EXPECT_EQ(c.replication_commit_timeout.count(), 3000);
  auto standby = secure({"--replication-factor=3", "--replication-listen=0.0.0.0:7101", key, voters,
                         "--replication-self=b@c"});
  ASSERT_TRUE(standby.config) << standby.message;
  EXPECT_EQ(standby.config->replication_self, "b@c");
  EXPECT_EQ(standby.config->node_name, "b") << "a standby serves as the member";
  EXPECT_EQ(parse({}).config->replication_factor, 1u);

  auto refused = [](parse_outcome o, const std::string& says) {
    EXPECT_FALSE(o.config);
    EXPECT_NE(o.message.find(says), std::string::npos) << o.message;
  };
  refused(parse({"--replication-factor=3"}), "a single node has none");
  refused(secure({"--replication-factor=2", "--replication-listen=0.0.0.0:1", key}), "must be odd");
  refused(secure({"--replication-factor=3", "--replication-listen=0.0.0.0:1", voters}), "--encryption-key-file");
  refused(secure({"--replication-factor=3", key, voters}), "--replication-listen");
  refused(secure({"--replication-factor=3", "--replication-listen=0.0.0.0:1", key}), "name the 3 voters");
  refused(secure({"--replication-factor=3", "--replication-listen=0.0.0.0:1", key,
                  "--replication-members=b=h:1,b@c=h:2"}),
          "2 voters listed, not the 3");
  refused(secure({"--replication-factor=3", "--replication-listen=0.0.0.0:1", key,
                  "--replication-members=x=h:1,y=h:2,z=h:3"}),
          "must list the member \"b\"");
  refused(secure({"--replication-factor=3", "--replication-listen=0.0.0.0:1", key, voters, "--replication-self=b@x"}),
          "must list --replication-self \"b@x\"");
  refused(secure({"--replication-factor=3", "--replication-listen=0.0.0.0:1", key,
                  "--replication-members=b=h:1,c=h:2,b@a=h:3"}),
          "\"c\" is another member");
  refused(secure({"--replication-factor=3", "--replication-listen=0.0.0.0:1", key,
                  "--replication-members=b=h:1,b@c=h:1,b@a=h:3"}),
          "address \"h:1\" appears twice");
  refused(secure({"--replication-self=b@c"}), "a standby needs --replication-factor above 1");
  refused(secure({"--cluster-standbys=d=h:1"}), "\"d\" is not among --cluster-members");
  refused(secure({"--cluster-standbys=a"}), "--cluster-standbys: member \"a\" is not name=host:port");
  refused(secure({"--replication-members=a=h:1"}), "needs --replication-factor above 1");
  refused(parse({"--replication-factor=9"}), "--replication-factor");
}
