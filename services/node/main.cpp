#include <sys/resource.h>
// The `healthtwin` node binary: the composition root. It reads the
// configuration, opens the store, starts the actor core, recovers, serves
// gRPC and HTTP, and on SIGTERM/SIGINT stops in the order that keeps every
// acknowledged reading: listeners first, then the sequencer (which drains,
// snapshots and checkpoints), then the actors, then the store.

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <caf/all.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/shard/shard.hpp"
#include "actors/cluster/membership.hpp"
#include "actors/models/wall_clock.hpp"
#include "services/grpc/api_services.hpp"
#include "services/peer/cluster_metrics.hpp"
#include "services/logging/json_log.hpp"
#include "services/peer/cluster_peers.hpp"
#include "services/peer/owner_forwarding.hpp"
#include "services/grpc/read_file.hpp"
#include "services/grpc/token_verifier.hpp"
#include "services/http/http_server.hpp"
#include "storage/audit_log.hpp"
#include "storage/retention.hpp"
#include "services/node/node_config.hpp"
#include "services/node/certificate_metrics.hpp"
#include "services/http/process_metrics.hpp"
#include "services/node/storage_metrics.hpp"
#include "storage/errc.hpp"
#include "storage/store.hpp"

using namespace healthtwin;

namespace {

// TLS 1.2+ (gRPC's minimum) with the node's certificate; with a client CA,
// clients must present a certificate it signed.
std::shared_ptr<grpc::ServerCredentials> grpc_credentials(const node::node_config& cfg,
                                                          const std::string& client_ca_file,
                                                          std::string& error) {
  if (cfg.insecure_plaintext)
    return grpc::InsecureServerCredentials();
  auto cert = services::read_file(cfg.tls_cert_file), key = services::read_file(cfg.tls_key_file);
  if (!cert || !key) {
    error = "cannot read --tls-cert-file or --tls-key-file";
    return nullptr;
  }
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  if (!client_ca_file.empty()) {
    auto ca = services::read_file(client_ca_file);
    if (!ca) {
      error = "cannot read the client CA file " + client_ca_file;
      return nullptr;
    }
    opts.pem_root_certs = *ca;
    opts.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

void write_port_file(const std::string& path, int grpc_port, int http_port) {
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp};
    out << "{\"grpc\":" << grpc_port << ",\"http\":" << http_port << "}\n";
  }
  std::filesystem::rename(tmp, path);
}

caf::actor_system_config& actor_config(caf::actor_system_config& cfg, unsigned threads) {
  // Work sharing: work stealing collapses on bursts to many actors on small
  // machines (CAF-0.17-COOKBOOK.md section 6).
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", threads);
  cfg.set("scheduler.max-throughput", 300);
  storage::register_error_category(cfg);
  return cfg;
}

// Descriptors up to the hard limit: connections (gRPC, HTTP, members) and
// RocksDB's files share them, and a soft limit of 1,024 is easily reached.
void raise_open_files_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
      spdlog::warn("cannot raise the open files limit to {}", lim.rlim_max);
  }
}

int run(const node::node_config& cfg) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("healthtwin"));
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  services::use_log_format(cfg.log_format);
  raise_open_files_limit();

  // Block the stop signals in every thread; main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  storage::store_settings store_settings;
  store_settings.data_dir = cfg.data_dir;
  store_settings.shards = cfg.shards;
  store_settings.sync_wal = cfg.sync_wal;
  store_settings.encryption_key_file = cfg.encryption_key_file;
  store_settings.pseudonym_key_file = cfg.pseudonym_key_file;
  store_settings.statistics = cfg.storage_statistics;
  auto opened = storage::store::open(store_settings);
  if (!opened) {
    spdlog::critical("cannot open the data directory {}: {}", cfg.data_dir,
                     storage::describe(opened.error()));
    return 3;
  }
  auto store = std::move(*opened);
  if (cfg.encryption_key_file.empty())
    spdlog::warn("no --encryption-key-file: the data directory is stored in plaintext "
                 "(development only)");
  if (!cfg.sync_wal)
    spdlog::warn("sync-wal=false: acknowledged readings survive a process crash, not a machine crash");

  services::token_settings token_settings;
  token_settings.audience = cfg.auth_audience;
  token_settings.issuer = cfg.auth_issuer;
  token_settings.public_key_file = cfg.auth_public_key_file;
  token_settings.jwks_file = cfg.auth_jwks_file;
  token_settings.hs256_secret_file = cfg.auth_hs256_secret_file;
  std::string auth_error;
  auto tokens = services::token_verifier::load(token_settings, auth_error);
  if (!tokens) {
    spdlog::critical("{}", auth_error);
    return 2;
  }
  if (!cfg.auth_hs256_secret_file.empty())
    spdlog::warn("bearer tokens use a shared HS256 secret (development only)");
  std::string tls_error;
  auto grpc_creds = grpc_credentials(cfg, cfg.tls_client_ca_file, tls_error);
  if (!grpc_creds) {
    spdlog::critical("{}", tls_error);
    return 2;
  }
  if (cfg.insecure_plaintext)
    spdlog::warn("--insecure-plaintext: gRPC and HTTP listeners are NOT encrypted "
                 "(local development only)");

  storage::audit_log audit{*store};
  if (auto err = audit.open()) {
    spdlog::critical("cannot open the audit log: {}", storage::describe(err));
    return 3;
  }

  prometheus::Registry metrics;
  std::atomic<bool> ready{false};
  caf::actor_system_config caf_cfg;
  int exit_code = 0;
  {
    caf::actor_system sys{actor_config(caf_cfg, cfg.scheduler_threads)};
    actors::ingest_flow flow;
    actors::twin_counters counters;
    actors::twin_index index;  // patient summaries for twin queries
    actors::twin_context ctx;
    ctx.store = store.get();
    ctx.index = &index;
    ctx.flow = &flow;
    ctx.counters = &counters;
    ctx.settings.device_tick_ms = cfg.device_check_interval.count();
    storage::retention_settings retention;
    retention.defaults.raw_readings_ms = cfg.retention_raw_days * 86'400'000;
    retention.defaults.alerts_ms = cfg.retention_alert_days * 86'400'000;
    for (auto& t : cfg.retention_tenants) {  // validated: TENANT=RAW:ALERT
      auto eq = t.find('='), colon = t.find(':');
      auto& p = retention.tenants[t.substr(0, eq)];
      p.raw_readings_ms = std::stoll(t.substr(eq + 1, colon - eq - 1)) * 86'400'000;
      p.alerts_ms = std::stoll(t.substr(colon + 1)) * 86'400'000;
    }
    storage::retention_sweeper sweeper{*store, retention, cfg.retention_interval};
    // The cluster (docs/cluster.md): without --cluster-members this node is
    // its only member and owns every shard. A member keeps the state it
    // persisted (hand-offs change it); a new one founds it from its list,
    // or takes it from the members it reaches (join, below).
    auto member_list = cfg.cluster_members;
    if (member_list.empty())
      member_list.push_back({cfg.node_name, cfg.grpc_listen});
    auto persisted = services::load_cluster_state(*store);
    if (!persisted) {
      spdlog::critical("{}", storage::describe(persisted.error()));
      return 3;
    }
    bool clustered = !cfg.cluster_members.empty();
    auto founded = cluster::cluster_state::found(member_list, cfg.shards);
    if (*persisted && (*persisted)->shards() != cfg.shards) {
      spdlog::critical("the persisted cluster state has {} shards, not {}", (*persisted)->shards(),
                       cfg.shards);
      return 3;
    }
    bool fresh = !*persisted;
    auto self_member = *std::find_if(member_list.begin(), member_list.end(),
                                     [&](auto& m) { return m.name == cfg.node_name; });
    cluster::membership members{fresh ? founded : **persisted, self_member, cfg.cluster_down_after,
                                [&store](const cluster::cluster_state& s) {
                                  return services::persist_cluster_state(*store, s);
                                }};

    actors::alert_hub_settings hub_settings;
    hub_settings.escalate_after_ms = cfg.alert_escalate_after.count();
    hub_settings.index = &index;
    if (clustered)  // the alerts of this node's shards
      hub_settings.owns = [&members](uint32_t shard) { return members.owns(shard); };
    ctx.alert_hub = actors::spawn_alert_hub(sys, hub_settings, *store, metrics);
    auto shards = actors::spawn_shards(sys, cfg.shards, ctx, metrics);
    actors::ingest_settings ingest_settings;
    if (clustered)  // patient parts of other members' patients go there
      ingest_settings.owns_shard = [&members](uint32_t shard) { return members.owns(shard); };
    ingest_settings.checkpoint_interval = cfg.checkpoint_interval;
    ingest_settings.checkpoint_every_readings = cfg.checkpoint_every_readings;
    ingest_settings.checkpoint_spread = cfg.checkpoint_spread;
    ingest_settings.index = &index;
    actors::ingest_sequencer sequencer{ingest_settings, *store, shards, flow, metrics};

    auto stop_actors = [&] {
      for (auto& s : shards)
        caf::anon_send(s, actors::shutdown_atom::value);
      caf::anon_send_exit(ctx.alert_hub, caf::exit_reason::user_shutdown);
    };

    node::storage_metrics storage_gauges{metrics, *store};
    if (!cfg.insecure_plaintext)
      node::publish_certificate_expiry(metrics, "serving", cfg.tls_cert_file);
    services::process_metrics process_gauges{metrics};
    services::cluster_metrics cluster_gauges{metrics, members};
    auto refresh_storage_metrics = [&] {
      storage_gauges.refresh();
      process_gauges.refresh();
      cluster_gauges.refresh(models::wall_clock_ms());
    };

    services::http_settings http_settings;
    http_settings.listen = cfg.http_listen;
    http_settings.tls_cert_file = cfg.tls_cert_file;
    http_settings.tls_key_file = cfg.tls_key_file;
    auto http = services::http_server::start(
        http_settings, metrics, ready, refresh_storage_metrics, [&] {
          auto failure = store->write_failure();
          return failure.empty() ? failure : "storage writes fail: " + failure;
        });
    if (!http) {
      spdlog::critical("{}", caf::to_string(http.error()));
      stop_actors();
      return 4;
    }

    services::peer_settings peer_settings;
    peer_settings.cluster_name = cfg.cluster_name;
    peer_settings.shards = cfg.shards;
    peer_settings.plaintext = cfg.insecure_plaintext;
    peer_settings.ca_file = cfg.cluster_ca_file;
    peer_settings.cert_file = cfg.tls_cert_file;
    peer_settings.key_file = cfg.tls_key_file;
    peer_settings.token_keys = tokens->fingerprint();
    peer_settings.node_key = store->node_key_id();
    peer_settings.pseudonym_key = store->pseudonym_key_id();
    peer_settings.probe_interval = cfg.cluster_probe_interval;
    peer_settings.probe_timeout = std::min(cfg.cluster_probe_interval, std::chrono::milliseconds(1000));

    services::api_settings api_settings;
    api_settings.node_name = cfg.node_name;
    if (!cfg.cluster_members.empty())
      api_settings.cluster_name = cfg.cluster_name;
    api_settings.shards = cfg.shards;
    api_settings.heartbeat_timeout = cfg.heartbeat_timeout;
    api_settings.max_clock_skew = cfg.max_clock_skew;
    api_settings.principal_calls_per_s = cfg.rate_limit_calls_per_s;
    api_settings.principal_readings_per_s = cfg.rate_limit_readings_per_s;
    api_settings.device_readings_per_s = cfg.rate_limit_device_readings_per_s;
    services::api_context api_ctx;
    api_ctx.sys = &sys;
    api_ctx.store = store.get();
    api_ctx.sequencer = &sequencer;
    api_ctx.shards = &shards;
    api_ctx.alert_hub = ctx.alert_hub;
    api_ctx.counters = &counters;
    api_ctx.index = &index;
    api_ctx.ready = &ready;
    api_ctx.audit = &audit;
    api_ctx.tokens = tokens.get();
    api_ctx.members = &members;
    api_ctx.metrics = &metrics;
    api_ctx.cluster_probe = &cluster_gauges;
    // Calls for other members' shards go to their owner's public API, over
    // TLS with the cluster CA and this node's certificate.
    services::owner_forwarding forwarding{members, peer_settings};
    if (!cfg.cluster_members.empty())
      api_ctx.forwarding = &forwarding;
    services::api_services api{api_settings, api_ctx};

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    // A port another process holds must fail to bind, not be shared:
    // gRPC's default SO_REUSEPORT would silently split connections between
    // two nodes (or two members' peer listeners) on one port.
    grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    int grpc_port = 0;
    builder.AddListeningPort(cfg.grpc_listen, grpc_creds, &grpc_port);
    builder.SetMaxReceiveMessageSize(static_cast<int>(4 * api_settings.max_request_bytes));
    api.register_with(builder);
    auto server = builder.BuildAndStart();
    if (!server || grpc_port == 0) {
      spdlog::critical("cannot listen for gRPC on {}", cfg.grpc_listen);
      stop_actors();
      return 4;
    }
    auto* health = server->GetHealthCheckService();
    health->SetServingStatus(false);

    // The peer listener (mutual TLS with the cluster CA) and the probes; a
    // member that places twins differently keeps this node out.
    std::unique_ptr<grpc::Service> peer_service;
    std::unique_ptr<grpc::Server> peer_server;
    std::unique_ptr<services::cluster_prober> prober;
    auto stop_listeners = [&] {
      prober.reset();
      if (peer_server)
        peer_server->Shutdown(std::chrono::system_clock::now());
      server->Shutdown(std::chrono::system_clock::now());
    };
    if (!cfg.cluster_members.empty()) {
      peer_settings.api_port = static_cast<uint16_t>(grpc_port);
      auto peer_creds = grpc_credentials(cfg, cfg.cluster_ca_file, tls_error);
      peer_service = services::make_peer_service(peer_settings, members, ready, api.peer_data());
      grpc::ServerBuilder peer_builder;
      peer_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
      int peer_port = 0;
      if (peer_creds)
        peer_builder.AddListeningPort(cfg.cluster_listen, peer_creds, &peer_port);
      peer_builder.RegisterService(peer_service.get());
      peer_server = peer_builder.BuildAndStart();
      if (!peer_server || peer_port == 0) {
        spdlog::critical("cannot listen for peers on {} {}", cfg.cluster_listen, tls_error);
        stop_listeners();
        stop_actors();
        return 4;
      }
      prober = std::make_unique<services::cluster_prober>(
          peer_settings, members, ready, fresh,
          [&api](const cluster::ownership_change& change) { api.on_ownership_change(change); });
      if (auto refused = prober->join(); !refused.empty()) {
        spdlog::critical("cluster {}: refusing to join: {}", cfg.cluster_name, refused);
        stop_listeners();
        stop_actors();
        return 2;
      }
      // A new member keeps the state it founded or took from here on: a
      // later change of --cluster-members (a StatefulSet scaled) must not
      // place shards anew over data that lives elsewhere.
      if (fresh)
        if (auto why = services::persist_cluster_state(*store, members.state()); !why.empty()) {
          spdlog::critical("cannot persist the cluster state: {}", why);
          stop_listeners();
          stop_actors();
          return 3;
        }
      prober->start();
      api.drop_owed_shards();
      auto map = members.map();
      spdlog::info("cluster {}: member {} of {}, owning {} of {} shards (state {}); peers on port {}",
                   cfg.cluster_name, cfg.node_name, members.state().members().size(),
                   map->owned_by(members.self()), cfg.shards, members.digest(), peer_port);
    }
    spdlog::info("node {} listening: gRPC on port {}, HTTP on port {}; recovering", cfg.node_name,
                 grpc_port, (*http)->port());

    if (auto err = sequencer.recover()) {
      spdlog::critical("recovery failed, refusing to serve: {}", storage::describe(err));
      stop_listeners();
      stop_actors();
      return 3;
    }
    sequencer.start();
    ready = true;
    health->SetServingStatus(true);
    if (!cfg.port_file.empty())
      write_port_file(cfg.port_file, grpc_port, (*http)->port());
    spdlog::info("ready: {} virtual shards, data in {}", cfg.shards, cfg.data_dir);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("received {}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");

    // Stop taking calls; let in-flight ones (and their acks) finish.
    ready = false;
    health->SetServingStatus(false);
    if (auto left = api.shutdown(std::chrono::seconds(10)))
      spdlog::warn("{} calls still in progress after 10 s; cancelling them", left);
    // Nothing is in flight now: idle client connections need not be waited for.
    stop_listeners();
    server->Wait();
    // Commit what was queued, let twins apply it, snapshot, checkpoint.
    sequencer.stop();
    stop_actors();
    http->reset();
    if (auto failure = store->write_failure(); !failure.empty()) {
      // Everything acknowledged is in the log; what the failed disk kept
      // from being snapshotted is replayed at the next start.
      spdlog::error("stopped with failed storage writes ({}); the next start replays the log",
                    failure);
      exit_code = 5;
    }
  }
  if (exit_code == 0) {
    // Every actor is gone: nothing writes any more. The WAL is not needed
    // by a start after a clean stop, and the ingest log is all behind the
    // last checkpoint: the directory shrinks to its data (docs/storage.md).
    if (auto err = store->flush_at_stop())
      spdlog::warn("flushing at stop failed (the next start replays the WAL): {}",
                   storage::describe(err));
    spdlog::info("stopped cleanly");
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = node::parse_node_config(std::vector<std::string>(argv, argv + argc));
  if (!parsed.config) {
    (parsed.exit_code == 0 ? std::cout : std::cerr) << parsed.message;
    return parsed.exit_code;
  }
  return run(*parsed.config);
}
