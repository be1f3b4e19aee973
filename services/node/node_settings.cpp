#include "services/node/node_settings.hpp"

#include <algorithm>
#include <string>

namespace healthtwin::node {

namespace {

constexpr int64_t day_ms = 86'400'000;

// "TENANT=RAW:ALERT" days, as parse_node_config checked them.
void bind_retention_tenant(const std::string& t, storage::retention_settings& out) {
  auto eq = t.find('='), colon = t.find(':');
  auto& p = out.tenants[t.substr(0, eq)];
  p.raw_readings_ms = std::stoll(t.substr(eq + 1, colon - eq - 1)) * day_ms;
  p.alerts_ms = std::stoll(t.substr(colon + 1)) * day_ms;
}

}  // namespace

node_settings bind_settings(const node_config& cfg) {
  node_settings s;
  s.store.data_dir = cfg.data_dir;
  s.store.shards = cfg.shards;
  s.store.sync_wal = cfg.sync_wal;
  s.store.encryption_key_file = cfg.encryption_key_file;
  s.store.pseudonym_key_file = cfg.pseudonym_key_file;
  s.store.statistics = cfg.storage_statistics;

  s.tokens.audience = cfg.auth_audience;
  s.tokens.issuer = cfg.auth_issuer;
  s.tokens.public_key_file = cfg.auth_public_key_file;
  s.tokens.jwks_file = cfg.auth_jwks_file;
  s.tokens.hs256_secret_file = cfg.auth_hs256_secret_file;

  s.retention.defaults.raw_readings_ms = cfg.retention_raw_days * day_ms;
  s.retention.defaults.alerts_ms = cfg.retention_alert_days * day_ms;
  for (auto& t : cfg.retention_tenants)
    bind_retention_tenant(t, s.retention);
  s.retention_interval = cfg.retention_interval;

  s.scheduler_threads = cfg.scheduler_threads;
  s.twins.device_tick_ms = cfg.device_check_interval.count();
  s.twins.passivate_after_ms = cfg.passivate_after.count();
  s.hub.escalate_after_ms = cfg.alert_escalate_after.count();
  s.ingest.checkpoint_interval = cfg.checkpoint_interval;
  s.ingest.directory_idle = cfg.passivate_after;
  s.ingest.checkpoint_every_readings = cfg.checkpoint_every_readings;
  s.ingest.checkpoint_spread = cfg.checkpoint_spread;

  s.http.listen = cfg.http_listen;
  s.http.tls_cert_file = cfg.tls_cert_file;
  s.http.tls_key_file = cfg.tls_key_file;
  s.http.tls_reload = std::chrono::seconds(cfg.tls_reload_interval_s);
  s.fhir_subscriptions.ca_file = cfg.fhir_subscription_ca_file;

  s.clustered = !cfg.cluster_members.empty();
  s.founding_members = cfg.cluster_members;
  if (s.founding_members.empty())
    s.founding_members.push_back({cfg.node_name, cfg.grpc_listen});
  s.peer.cluster_name = cfg.cluster_name;
  s.peer.shards = cfg.shards;
  s.peer.plaintext = cfg.insecure_plaintext;
  s.peer.ca_file = cfg.cluster_ca_file;
  s.peer.cert_file = cfg.tls_cert_file;
  s.peer.key_file = cfg.tls_key_file;
  s.peer.standbys = cfg.cluster_standbys;
  s.peer.probe_interval = cfg.cluster_probe_interval;
  s.peer.probe_timeout = std::min(cfg.cluster_probe_interval, std::chrono::milliseconds(1000));

  s.api.node_name = cfg.node_name;
  s.api.backup_dir = cfg.backup_dir;
  if (s.clustered)
    s.api.cluster_name = cfg.cluster_name;
  s.api.shards = cfg.shards;
  s.api.heartbeat_timeout = cfg.heartbeat_timeout;
  s.api.max_clock_skew = cfg.max_clock_skew;
  s.api.principal_calls_per_s = cfg.rate_limit_calls_per_s;
  s.api.max_watches_per_principal = cfg.max_watches_per_principal;
  s.api.max_watches = cfg.max_watches;
  s.api.principal_readings_per_s = cfg.rate_limit_readings_per_s;
  s.api.device_readings_per_s = cfg.rate_limit_device_readings_per_s;
  s.api.regions.self = cfg.region;
  s.api.regions.endpoints = cfg.region_endpoints;
  s.api.regions.forward = cfg.region_forward;
  s.api.regions.ca_file = cfg.region_ca_file;
  s.api.handoff.chunk_bytes = static_cast<size_t>(cfg.handoff_chunk_bytes);
  s.api.handoff.checkpoint_timeout = cfg.handoff_checkpoint_timeout;
  s.api.handoff.stream_timeout = cfg.handoff_stream_timeout;
  s.api.handoff.replicated = cfg.replication_factor > 1;
  return s;
}

}  // namespace healthtwin::node
