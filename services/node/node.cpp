#include "services/node/node.hpp"

#include <sys/resource.h>

#include <filesystem>
#include <fstream>

#include <caf/all.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/cluster/membership.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/wall_clock.hpp"
#include "actors/shard/shard.hpp"
#include "services/grpc/api_services.hpp"
#include "services/node/subscription_wiring.hpp"
#include "services/grpc/read_file.hpp"
#include "services/node/tls_stage.hpp"
#include "services/node/token_reload.hpp"
#include "services/grpc/token_verifier.hpp"
#include "services/http/http_server.hpp"
#include "services/http/process_metrics.hpp"
#include "services/node/certificate_metrics.hpp"
#include "services/node/storage_metrics.hpp"
#include "services/peer/cluster_metrics.hpp"
#include "services/peer/cluster_peers.hpp"
#include "services/node/replication_stage.hpp"
#include "services/peer/owner_forwarding.hpp"
#include "services/peer/store_copy.hpp"
#include "storage/audit_log.hpp"
#include "storage/errc.hpp"
#include "storage/retention.hpp"
#include "storage/store.hpp"

namespace healthtwin::node {

namespace {

// TLS 1.2+ (gRPC's minimum) with the node's certificate (its staged copy,
// tls_stage.hpp); with a CA, clients must present a certificate it signed.
// With a reload interval gRPC's file watcher reads the copy again at that
// interval: rotated certificates and CAs serve new connections without a
// restart.
std::shared_ptr<grpc::ServerCredentials> grpc_credentials(const tls_files& files, unsigned reload_s,
                                                          std::string& error) {
  if (reload_s > 0) {
    namespace exp = grpc::experimental;
    auto watcher = std::make_shared<exp::FileWatcherCertificateProvider>(files.key, files.cert, files.ca, reload_s);
    exp::TlsServerCredentialsOptions opts{watcher};
    opts.watch_identity_key_cert_pairs();
    if (!files.ca.empty()) {
      opts.watch_root_certs();
      opts.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    }
    return exp::TlsServerCredentials(opts);
  }
  auto cert = services::read_file(files.cert), key = services::read_file(files.key);
  auto ca = files.ca.empty() ? std::optional<std::string>{""} : services::read_file(files.ca);
  if (!cert || !key || !ca) {
    error = "cannot read the staged TLS files";
    return nullptr;
  }
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  if (!files.ca.empty()) {
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

// A grpc::ServerBuilder whose port another process holds fails to bind
// rather than share it: gRPC's default SO_REUSEPORT would silently split
// connections between two nodes (or two members' peer listeners).
void no_port_sharing(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

}  // namespace

node::node(node_config cfg) : cfg_(std::move(cfg)), settings_(bind_settings(cfg_)) {}

node::~node() {  // also when run() did not return (an exception)
  stops_.unwind();
  release_actors();
}

int node::run() {
  raise_open_files_limit();
  // Block the stop signals in every thread (all started after this); run
  // waits for them below.
  sigemptyset(&stop_signals_);
  sigaddset(&stop_signals_, SIGINT);
  sigaddset(&stop_signals_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals_, nullptr);

  struct phase {
    const char* name;
    int (node::*start)();
  };
  static constexpr phase phases[] = {
      {"storage", &node::open_storage},   {"credentials", &node::load_credentials},
      {"http", &node::start_http},        {"replication", &node::start_replication},
      {"membership", &node::load_membership},
      {"actors", &node::start_actors},    {"api", &node::start_api},
      {"cluster", &node::join_cluster},   {"recovery", &node::recover},
  };
  for (auto& p : phases) {
    spdlog::debug("starting: {}", p.name);
    if (int code = (this->*p.start)(); code != exit_ok) {
      spdlog::critical("the node did not start ({} phase); stopping", p.name);
      stops_.unwind();
      release_actors();
      return code;
    }
    if (stop_before_serving_) {
      stops_.unwind();
      release_actors();
      return replication_ && replication_->copy_staged() ? exit_install_copy : exit_ok;
    }
  }
  spdlog::info("ready: {} virtual shards, data in {}", cfg_.shards, cfg_.data_dir);

  bool deposed = false;
  if (int sig = wait_for_stop(deposed); sig != 0)
    spdlog::info("received {}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  stops_.unwind();
  int code = exit_ok;
  if (deposed) {
    // Another voter leads the store: what this process holds in memory is
    // no longer the store's (ADR 0039). It starts again and waits to lead.
    code = exit_deposed;
  } else if (auto failure = store_->write_failure(); !failure.empty()) {
    // Everything acknowledged is in the log; what the failed disk kept
    // from being snapshotted is replayed at the next start.
    spdlog::error("stopped with failed storage writes ({}); the next start replays the log", failure);
    code = exit_storage_failed;
  }
  release_actors();
  if (code == exit_ok) {
    // Every actor is gone: nothing writes any more. The WAL is not needed
    // by a start after a clean stop, and the ingest log is all behind the
    // last checkpoint: the directory shrinks to its data (docs/storage.md).
    if (auto err = store_->flush_at_stop())
      spdlog::warn("flushing at stop failed (the next start replays the WAL): {}",
                   storage::describe(err));
    spdlog::info("stopped cleanly");
  }
  return code;
}

// Until SIGTERM or SIGINT (returned), or, with a replicated store, until
// this process no longer leads it (`deposed`; 0 returned): a deposed voter
// must stop serving within the group's election timeout, since another one
// serves the member (ADR 0039).
int node::wait_for_stop(bool& deposed) {
  timespec tick{0, 100'000'000};
  while (true) {
    int sig = sigtimedwait(&stop_signals_, nullptr, replication_ ? &tick : nullptr);
    if (sig > 0)
      return sig;
    if (replication_ && !replication_->leading()) {
      spdlog::warn("replication: {} no longer leads member {}'s store (term {} served); stopping to serve it "
                   "again only once it leads",
                   cfg_.replication_self, cfg_.node_name, replication_->term_served());
      deposed = true;
      return 0;
    }
  }
}

void node::release_actors() {
  prober_.reset();
  peer_server_.reset();
  peer_service_.reset();
  server_.reset();
  api_.reset();
  forwarding_.reset();
  sweeper_.reset();
  sequencer_.reset();
  shards_.clear();
  twins_.alert_hub = nullptr;
  sys_.reset();  // waits for every actor to finish
}

int node::open_storage() {
  // A copy of the leader's store staged by a voter that fell behind its
  // group's snapshot (ADR 0040) becomes the data directory first.
  bool installed = false;
  if (auto why = services::install_staged_copy(cfg_.data_dir, installed); !why.empty()) {
    spdlog::critical("cannot install the staged copy of the store: {}", why);
    return exit_storage;
  }
  if (installed)
    spdlog::warn("installed the copy of the store that the group's leader sent; its Raft state kept");
  auto opened = storage::store::open(settings_.store);
  if (!opened) {
    spdlog::critical("cannot open the data directory {}: {}", cfg_.data_dir,
                     storage::describe(opened.error()));
    return exit_storage;
  }
  store_ = std::move(*opened);
  if (cfg_.encryption_key_file.empty())
    spdlog::warn("no --encryption-key-file: the data directory is stored in plaintext "
                 "(development only)");
  if (!cfg_.sync_wal)
    spdlog::warn("sync-wal=false: acknowledged readings survive a process crash, not a machine crash");
  audit_ = std::make_unique<storage::audit_log>(*store_);
  if (auto err = audit_->open()) {
    spdlog::critical("cannot open the audit log: {}", storage::describe(err));
    return exit_storage;
  }
  return exit_ok;
}

int node::load_credentials() {
  std::string error;
  tokens_ = services::token_verifier::load(settings_.tokens, error);
  if (!tokens_) {
    spdlog::critical("{}", error);
    return exit_config;
  }
  if (!cfg_.auth_hs256_secret_file.empty())
    spdlog::warn("bearer tokens use a shared HS256 secret (development only)");
  if (cfg_.auth_reload_interval_s > 0)
    token_reload_ = reload_token_keys_every(*tokens_, std::chrono::seconds(cfg_.auth_reload_interval_s));
  if (cfg_.insecure_plaintext) {
    grpc_creds_ = grpc::InsecureServerCredentials();
    spdlog::warn("--insecure-plaintext: gRPC and HTTP listeners are NOT encrypted "
                 "(local development only)");
  } else {
    // Listeners and peer channels read checked copies of the files (rotation, tls_stage.hpp).
    auto reload = std::chrono::seconds(cfg_.tls_reload_interval_s);
    api_tls_ = tls_stage::open({cfg_.tls_cert_file, cfg_.tls_key_file, cfg_.tls_client_ca_file}, reload, error);
    if (api_tls_ && settings_.clustered)
      peer_tls_ = tls_stage::open({cfg_.tls_cert_file, cfg_.tls_key_file, cfg_.cluster_ca_file}, reload, error);
    if (api_tls_)
      grpc_creds_ = grpc_credentials(api_tls_->staged(), cfg_.tls_reload_interval_s, error);
    if (!grpc_creds_ || (settings_.clustered && !peer_tls_)) {
      spdlog::critical("{}", error);
      return exit_config;
    }
    settings_.http.tls_cert_file = api_tls_->staged().cert;
    settings_.http.tls_key_file = api_tls_->staged().key;
    if (peer_tls_) {
      settings_.peer.cert_file = peer_tls_->staged().cert;
      settings_.peer.key_file = peer_tls_->staged().key;
      settings_.peer.ca_file = peer_tls_->staged().ca;
    }
  }
  settings_.peer.token_keys = [t = tokens_.get()] { return std::pair{t->claims_hash(), t->key_hashes()}; };
  settings_.peer.node_key = store_->node_key_id();
  settings_.peer.pseudonym_key = store_->pseudonym_key_id();
  return exit_ok;
}

// Replicated stores (ADR 0038): from here on every write of the store goes
// through this member's Raft group; the node reads its store only once it
// leads the group and has applied everything committed before.
int node::start_replication() {
  if (cfg_.replication_factor <= 1)
    return exit_ok;
  replication_settings rs;
  rs.member = cfg_.node_name;
  rs.self = cfg_.replication_self;
  rs.voters = cfg_.replication_members;
  rs.listen = cfg_.replication_listen;
  rs.cert_file = peer_tls_->staged().cert;
  rs.key_file = peer_tls_->staged().key;
  rs.ca_file = peer_tls_->staged().ca;
  rs.data_dir = cfg_.data_dir;
  rs.snapshot_entries = cfg_.replication_snapshot_entries;
  rs.election_timeout = cfg_.replication_election_timeout;
  rs.commit_timeout = cfg_.replication_commit_timeout;
  std::string why;
  replication_ = replication_stage::start(rs, *store_, why);
  if (!replication_) {
    spdlog::critical("replication: {}", why);
    return exit_config;
  }
  replication_->expose(metrics_);
  replication_gauges_ = replication_.get();
  // Waits as long as it takes (or until a stop signal): without a majority
  // of its group this member cannot serve; a standby waits until the member
  // is gone (ADR 0039).
  bool standby = cfg_.replication_self != cfg_.node_name;
  auto since = std::chrono::steady_clock::now();
  while (!replication_->wait_until_leading(std::chrono::seconds(1))) {
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) {
      spdlog::info("replication: stopping before this process led the store");
      stop_before_serving_ = true;
      return exit_ok;
    }
    if (replication_->copy_staged()) {  // run() starts the process again to install it
      stop_before_serving_ = true;
      return exit_ok;
    }
    if (!standby && std::chrono::steady_clock::now() - since > std::chrono::seconds(60)) {
      spdlog::warn("replication: this member has not led its store for 60 s (no majority of its group?)");
      since = std::chrono::steady_clock::now();
    }
  }
  if (standby)
    spdlog::warn("replication: standby {} serves member {} (failover)", cfg_.replication_self, cfg_.node_name);
  return exit_ok;
}

// The cluster (docs/cluster.md): without --cluster-members this node is its
// only member and owns every shard. A member keeps the state it persisted
// (hand-offs change it); a new one founds it from its list, or takes it
// from the members it reaches (join_cluster).
int node::load_membership() {
  auto persisted = services::load_cluster_state(*store_);
  if (!persisted) {
    spdlog::critical("{}", storage::describe(persisted.error()));
    return exit_storage;
  }
  if (*persisted && (*persisted)->shards() != cfg_.shards) {
    spdlog::critical("the persisted cluster state has {} shards, not {}", (*persisted)->shards(),
                     cfg_.shards);
    return exit_storage;
  }
  auto& list = settings_.founding_members;
  fresh_ = !*persisted;
  auto self = *std::find_if(list.begin(), list.end(), [&](auto& m) { return m.name == cfg_.node_name; });
  members_ = std::make_unique<cluster::membership>(
      fresh_ ? cluster::cluster_state::found(list, cfg_.shards) : **persisted, self,
      cfg_.cluster_down_after, [store = store_.get()](const cluster::cluster_state& s) {
        return services::persist_cluster_state(*store, s);
      });
  cluster_gauges_ = std::make_unique<services::cluster_metrics>(metrics_, *members_);
  cluster_gauges_ready_ = cluster_gauges_.get();
  return exit_ok;
}

int node::start_http() {
  storage_gauges_ = std::make_unique<storage_metrics>(metrics_, *store_);
  if (api_tls_)  // the checked copy: the certificate served, not one on disk that did not load
    certificate_gauge_ = std::make_unique<certificate_expiry_gauge>(metrics_, "serving", api_tls_->staged().cert);
  process_gauges_ = std::make_unique<services::process_metrics>(metrics_);
  // Served from here on — /healthz, /metrics (a standby's replication
  // gauges too) — while later phases may wait; their gauges join when made.
  auto refresh = [this] {
    storage_gauges_->refresh();
    if (auto* r = replication_gauges_.load())
      r->refresh();
    if (certificate_gauge_)
      certificate_gauge_->refresh();
    process_gauges_->refresh();
    if (auto* c = cluster_gauges_ready_.load())
      c->refresh(models::wall_clock_ms());
  };
  auto problem = [store = store_.get()] {
    auto failure = store->write_failure();
    return failure.empty() ? failure : "storage writes fail: " + failure;
  };
  auto http = services::http_server::start(settings_.http, metrics_, ready_, refresh, problem);
  if (!http) {
    spdlog::critical("{}", caf::to_string(http.error()));
    return exit_listen;
  }
  http_ = std::move(*http);
  stops_.push("http", [this] { http_.reset(); });
  return exit_ok;
}

int node::start_actors() {
  sys_ = std::make_unique<caf::actor_system>(actor_config(caf_cfg_, settings_.scheduler_threads));
  twins_.store = store_.get();
  twins_.index = &index_;
  twins_.changes = &changes_;
  twins_.flow = &flow_;
  twins_.counters = &counters_;
  twins_.settings = settings_.twins;
  auto hub = settings_.hub;
  hub.index = &index_;
  hub.changes = &changes_;
  auto owns = [members = members_.get()](uint32_t shard) { return members->owns(shard); };
  if (settings_.clustered)  // the alerts of this node's shards
    hub.owns = owns;
  twins_.alert_hub = actors::spawn_alert_hub(*sys_, hub, *store_, metrics_);
  shards_ = actors::spawn_shards(*sys_, cfg_.shards, twins_, metrics_);
  stops_.push("actors", [this] {
    for (auto& s : shards_)
      caf::anon_send(s, actors::shutdown_atom::value);
    caf::anon_send_exit(twins_.alert_hub, caf::exit_reason::user_shutdown);
  });
  auto ingest = settings_.ingest;
  if (settings_.clustered)  // patient parts of other members' patients go there
    ingest.owns_shard = owns;
  ingest.index = &index_;
  ingest.changes = &changes_;
  sequencer_ = std::make_unique<actors::ingest_sequencer>(ingest, *store_, shards_, flow_, metrics_);
  // Commit what was queued, let twins apply it, snapshot, checkpoint.
  stops_.push("sequencer", [this] {
    if (sequencer_started_)
      sequencer_->stop();
  });
  sweeper_ = std::make_unique<storage::retention_sweeper>(*store_, settings_.retention,
                                                          settings_.retention_interval);
  return exit_ok;
}

int node::start_api() {
  services::api_context ctx;
  ctx.sys = sys_.get();
  ctx.store = store_.get();
  ctx.sequencer = sequencer_.get();
  ctx.shards = &shards_;
  ctx.alert_hub = twins_.alert_hub;
  ctx.counters = &counters_;
  ctx.index = &index_;
  ctx.changes = &changes_;
  ctx.ready = &ready_;
  ctx.audit = audit_.get();
  ctx.tokens = tokens_.get();
  ctx.members = members_.get();
  ctx.metrics = &metrics_;
  ctx.cluster_probe = cluster_gauges_.get();
  // Calls for other members' shards go to their owner's public API, over
  // TLS with the cluster CA and this node's certificate.
  forwarding_ = std::make_unique<services::owner_forwarding>(*members_, settings_.peer);
  if (settings_.clustered)
    ctx.forwarding = forwarding_.get();
  ctx.self_channel = [this] {
    std::lock_guard<std::mutex> guard{self_channel_mtx_};
    return self_channel_;
  };
  api_ = std::make_unique<services::api_services>(settings_.api, ctx);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  no_port_sharing(builder);
  builder.AddListeningPort(cfg_.grpc_listen, grpc_creds_, &grpc_port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(4 * settings_.api.max_request_bytes));
  api_->register_with(builder);
  server_ = builder.BuildAndStart();
  if (!server_ || grpc_port_ == 0) {
    spdlog::critical("cannot listen for gRPC on {}", cfg_.grpc_listen);
    return exit_listen;
  }
  server_->GetHealthCheckService()->SetServingStatus(false);
  // The API as JSON and the dashboard over HTTP call this server in process.
  grpc::ChannelArguments in_process;
  in_process.SetMaxReceiveMessageSize(64 << 20);
  {
    std::lock_guard<std::mutex> guard{self_channel_mtx_};
    self_channel_ = server_->InProcessChannel(in_process);
  }
  http_->attach_api(self_channel_);
  stops_.push("api", [this] {
    http_->stop_api();
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    std::lock_guard<std::mutex> guard{self_channel_mtx_};
    self_channel_.reset();
  });
  // FHIR subscriptions: kept in the store, each delivered from this node's
  // alert events (stopped before the API above).
  subscriptions_ = make_fhir_subscriptions(settings_.fhir_subscriptions, ctx,
                                           settings_.clustered ? members_.get() : nullptr, settings_.peer);
  if (auto err = subscriptions_->start()) {
    spdlog::critical("{}", *err);
    return exit_storage;
  }
  subscriptions_->attach(self_channel_);
  http_->attach_subscriptions(subscriptions_.get());
  stops_.push("fhir subscriptions", [this] { subscriptions_->stop(); });
  return exit_ok;
}

// The peer listener (mutual TLS with the cluster CA) and the probes; a
// member that places twins differently keeps this node out.
int node::join_cluster() {
  if (!settings_.clustered)
    return exit_ok;
  settings_.peer.api_port = static_cast<uint16_t>(grpc_port_);
  std::string tls_error;
  auto peer_creds = peer_tls_ ? grpc_credentials(peer_tls_->staged(), cfg_.tls_reload_interval_s, tls_error)
                              : grpc::InsecureServerCredentials();
  peer_service_ = services::make_peer_service(settings_.peer, *members_, ready_, api_->peer_data());
  grpc::ServerBuilder builder;
  no_port_sharing(builder);
  int peer_port = 0;
  if (peer_creds)
    builder.AddListeningPort(cfg_.cluster_listen, peer_creds, &peer_port);
  builder.RegisterService(peer_service_.get());
  peer_server_ = builder.BuildAndStart();
  if (!peer_server_ || peer_port == 0) {
    spdlog::critical("cannot listen for peers on {} {}", cfg_.cluster_listen, tls_error);
    return exit_listen;
  }
  stops_.push("cluster", [this] {
    prober_.reset();
    peer_server_->Shutdown(std::chrono::system_clock::now());
  });
  prober_ = std::make_unique<services::cluster_prober>(
      settings_.peer, *members_, ready_, fresh_,
      [api = api_.get()](const cluster::ownership_change& change) { api->on_ownership_change(change); });
  if (auto refused = prober_->join(); !refused.empty()) {
    spdlog::critical("cluster {}: refusing to join: {}", cfg_.cluster_name, refused);
    return exit_config;
  }
  // A new member keeps the state it founded or took from here on: a later
  // change of --cluster-members (a StatefulSet scaled) must not place
  // shards anew over data that lives elsewhere.
  if (fresh_)
    if (auto why = services::persist_cluster_state(*store_, members_->state()); !why.empty()) {
      spdlog::critical("cannot persist the cluster state: {}", why);
      return exit_storage;
    }
  prober_->start();
  api_->drop_owed_shards();
  auto map = members_->map();
  spdlog::info("cluster {}: member {} of {}, owning {} of {} shards (state {}); peers on port {}",
               cfg_.cluster_name, cfg_.node_name, members_->state().members().size(),
               map->owned_by(members_->self()), cfg_.shards, members_->digest(), peer_port);
  return exit_ok;
}

int node::recover() {
  spdlog::info("node {} listening: gRPC on port {}, HTTP on port {}; recovering", cfg_.node_name,
               grpc_port_, http_->port());
  if (auto err = sequencer_->recover()) {
    spdlog::critical("recovery failed, refusing to serve: {}", storage::describe(err));
    return exit_storage;
  }
  sequencer_->start();
  sequencer_started_ = true;
  ready_ = true;
  server_->GetHealthCheckService()->SetServingStatus(true);
  // Stop taking calls; let in-flight ones (and their acks) finish.
  stops_.push("serving", [this] {
    ready_ = false;
    server_->GetHealthCheckService()->SetServingStatus(false);
    if (auto left = api_->shutdown(std::chrono::seconds(10)))
      spdlog::warn("{} calls still in progress after 10 s; cancelling them", left);
  });
  if (!cfg_.port_file.empty()) {
    write_port_file(cfg_.port_file, grpc_port_, http_->port());
    // The file says "serving here": a stopped node (a deposed standby
    // that starts again, ADR 0039) does not.
    stops_.push("port file", [path = cfg_.port_file] {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    });
  }
  return exit_ok;
}

}  // namespace healthtwin::node
