// healthtwin-hl7: an HL7 v2 gateway. Listens for MLLP (optionally over
// TLS), reads ORU^R01 per IHE PCD-01, ingests the observations into a
// HealthTwin node over its public gRPC API (a service token), and ACKs each
// message only after the node stored it durably; with --alarms-to, sends the
// tenant's alert events out as IHE PCD-04 ORU^R40 to an alarm manager.
// docs/hl7.md.
//
//   healthtwin-hl7 --listen 127.0.0.1:2575 --target 127.0.0.1:50051 --tenant h1
//       --token-file service.jwt --tls-ca-file ca.pem --data-dir /var/lib/healthtwin-hl7
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "services/grpc/client_channel.hpp"
#include "services/hl7/alarm_sender.hpp"
#include "services/hl7/hl7_gateway.hpp"
#include "services/hl7/mllp_server.hpp"
#include "services/logging/json_log.hpp"
#include "storage/errc.hpp"

using namespace healthtwin;

namespace {

bool read_pem(const std::string& path, std::string& out) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"healthtwin-hl7: HL7 v2 (MLLP, IHE PCD-01) gateway into a HealthTwin node"};
  std::string listen = "127.0.0.1:2575", node, tenant, token_file, node_ca, data_dir, tls_cert, tls_key;
  std::string facility, processing_ids = "P", bed_map_file;
  bool plaintext = false;
  size_t max_bytes = 1 << 20;
  int workers = 4;
  int journal_days = 7;
  int ingest_timeout_s = 10;
  int message_timeout_ms = 30'000;
  app.add_option("--listen", listen, "MLLP address host:port (port 0: a free one)");
  app.add_option("--target", node, "the node's gRPC address host:port")->required();
  app.add_option("--tenant", tenant, "tenant of the devices (OBX-18 names the device)")->required();
  app.add_option("--token-file", token_file, "bearer token with the service role")->required();
  app.add_option("--tls-ca-file", node_ca, "PEM CA that signed the node's certificate");
  app.add_flag("--plaintext", plaintext, "reach a node started with --insecure-plaintext");
  app.add_option("--data-dir", data_dir, "the message journal's directory")->required();
  app.add_option("--mllp-tls-cert-file", tls_cert, "PEM certificate chain: MLLP over TLS");
  app.add_option("--mllp-tls-key-file", tls_key, "its private key");
  unsigned tls_reload_s = 60;
  app.add_option("--mllp-tls-reload-interval-s", tls_reload_s,
                 "how often the MLLP certificate and key files are read again, so that rotated ones serve new "
                 "connections without a restart; 0: read once at start")
      ->check(CLI::Range(0u, 86'400u))
      ->capture_default_str();
  app.add_option("--facility", facility, "our MSH-4 in ACKs");
  app.add_option("--bed-map", bed_map_file,
                 "JSON: \"ward^room^bed\" -> device ids; takes ADT A01/A02/A03/A08 (docs/hl7.md)");
  app.add_option("--processing-ids", processing_ids, "MSH-11 processing ids taken (P; PT for a test feed)");
  app.add_option("--max-message-bytes", max_bytes, "larger messages are refused (AR)")->check(CLI::Range(1024, 64 << 20));
  app.add_option("--workers", workers, "messages handled at once")->check(CLI::Range(1, 64));
  app.add_option("--journal-days", journal_days, "days a message's control id is remembered")->check(CLI::Range(1, 365));
  app.add_option("--ingest-timeout-s", ingest_timeout_s, "deadline of an ingest call")->check(CLI::Range(1, 120));
  app.add_option("--message-timeout-ms", message_timeout_ms, "a sender slower than this with one message is cut off")
      ->check(CLI::Range(100, 600'000));
  std::string alarms_to, alarms_ward, receiver_app, receiver_facility;
  int alarms_ack_timeout_ms = 10'000;
  app.add_option("--alarms-to", alarms_to,
                 "host:port of an alarm manager's MLLP listener: the tenant's alerts go there as PCD-04 ORU^R40");
  app.add_option("--alarms-ward", alarms_ward, "only this ward's alerts");
  app.add_option("--alarms-receiver-app", receiver_app, "MSH-5 of the alarm messages");
  app.add_option("--alarms-receiver-facility", receiver_facility, "MSH-6 of the alarm messages");
  app.add_option("--alarms-ack-timeout-ms", alarms_ack_timeout_ms, "wait this long for each ACK, then send again")
      ->check(CLI::Range(100, 600'000));
  hl7::mllp_client_tls alarms_tls;
  app.add_option("--alarms-tls-ca-file", alarms_tls.ca_file,
                 "send the alarms over TLS 1.2+: the receiver's certificate must chain to these CAs and name "
                 "the host of --alarms-to")
      ->check(CLI::ExistingFile);
  auto* alarms_cert = app.add_option("--alarms-tls-cert-file", alarms_tls.cert_file,
                                     "this gateway's certificate chain, for receivers that require mutual TLS")
                          ->check(CLI::ExistingFile);
  app.add_option("--alarms-tls-key-file", alarms_tls.key_file, "the private key of --alarms-tls-cert-file")
      ->check(CLI::ExistingFile)
      ->needs(alarms_cert);
  alarms_cert->needs("--alarms-tls-key-file");
  alarms_cert->needs("--alarms-tls-ca-file");
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text, or json: one JSON object per line")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  services::use_log_format(log_format);
  if (!models::is_valid_id(tenant)) {
    std::fprintf(stderr, "healthtwin-hl7: --tenant must be a tenant id ([a-z0-9-], up to 63)\n");
    return 2;
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  services::channel_settings cs;
  cs.target = node;
  cs.token_file = token_file;  // read again when rotated
  cs.plaintext = plaintext;
  cs.ca_file = node_ca;
  std::string error;
  auto channel = services::make_channel(cs, error);
  if (!channel) {
    std::fprintf(stderr, "healthtwin-hl7: %s\n", error.c_str());
    return 2;
  }
  auto stub = v1::IngestService::NewStub(channel);

  auto journal = storage::message_journal::open(data_dir);
  if (!journal) {
    std::fprintf(stderr, "healthtwin-hl7: %s\n", storage::describe(journal.error()).c_str());
    return 2;
  }
  std::unique_ptr<v1::RegistryService::Stub> registry;
  std::unique_ptr<hl7::adt_handler> adt;
  if (!bed_map_file.empty()) {
    std::string why;
    auto beds = hl7::bed_map::load(bed_map_file, why);
    if (!beds) {
      std::fprintf(stderr, "healthtwin-hl7: --bed-map: %s\n", why.c_str());
      return 2;
    }
    registry = v1::RegistryService::NewStub(channel);
    adt = std::make_unique<hl7::adt_handler>(tenant, std::move(*beds), *registry,
                                              std::chrono::seconds(ingest_timeout_s));
  }
  hl7::gateway_settings gs;
  gs.tenant = tenant;
  gs.us.facility = facility;
  gs.processing_ids = processing_ids;
  auto timeout = std::chrono::seconds(ingest_timeout_s);
  hl7::hl7_gateway gateway{gs, **journal, [&stub, timeout](const v1::IngestRequest& req, v1::IngestResponse& resp) {
                             grpc::ClientContext ctx;
                             ctx.set_deadline(std::chrono::system_clock::now() + timeout);
                             return stub->Ingest(&ctx, req, &resp);
                           },
                           adt.get()};

  hl7::mllp_server::settings ms;
  ms.listen = listen;
  ms.workers = workers;
  ms.limits.max_message_bytes = max_bytes;
  ms.limits.message_timeout = std::chrono::milliseconds(message_timeout_ms);
  ms.tls_cert_file = tls_cert;
  ms.tls_key_file = tls_key;
  ms.tls_reload = std::chrono::seconds(tls_reload_s);
  if (!tls_cert.empty() && (!read_pem(tls_cert, ms.tls_cert_pem) || !read_pem(tls_key, ms.tls_key_pem))) {
    std::fprintf(stderr, "healthtwin-hl7: --mllp-tls-cert-file or --mllp-tls-key-file is unreadable\n");
    return 2;
  }
  auto server = hl7::mllp_server::start(
      ms, {[&gateway](std::string m) { return gateway.handle(std::move(m)); },
           [&gateway](std::string prefix, size_t limit) { return gateway.too_large(std::move(prefix), limit); }});
  if (!server) {
    std::fprintf(stderr, "healthtwin-hl7: %s\n", to_string(server.error()).c_str());
    return 2;
  }
  std::unique_ptr<hl7::alarm_sender> alarms;
  if (!alarms_to.empty()) {
    hl7::alarm_sender_settings as;
    as.receiver = alarms_to;
    as.tenant = tenant;
    as.ward = alarms_ward;
    as.state_file = data_dir + "/pcd04-delivered";
    as.us = {facility, receiver_app, receiver_facility, processing_ids};
    as.ack_timeout = std::chrono::milliseconds(alarms_ack_timeout_ms);
    as.tls = alarms_tls;
    std::string why;
    alarms = hl7::alarm_sender::start(as, channel, why);
    if (!alarms) {
      std::fprintf(stderr, "healthtwin-hl7: %s\n", why.c_str());
      return 2;
    }
    spdlog::info("hl7: sending the alerts of the tenant as PCD-04 to {}{}", alarms_to,
                 alarms_tls.enabled() ? " over TLS" : " (plain TCP: only on a trusted network)");
  }
  auto colon = listen.rfind(':');
  spdlog::info("hl7: listening for MLLP{} on {}:{}", ms.tls_cert_pem.empty() ? "" : " over TLS",
               listen.substr(0, colon), (*server)->port());

  // Forget old control ids once an hour; stop on SIGINT/SIGTERM.
  std::atomic<bool> stopping{false};
  std::thread sweeper{[&] {
    while (!stopping) {
      auto n = (*journal)->forget_before(models::wall_clock_ms() - journal_days * 86'400'000LL);
      if (n > 0)
        spdlog::info("hl7: forgot {} messages older than {} days", n, journal_days);
      for (int i = 0; i < 3600 && !stopping; ++i)
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }};
  int sig = 0;
  sigwait(&stop_signals, &sig);
  stopping = true;
  server->reset();
  sweeper.join();
  if (alarms) {
    spdlog::info("hl7: alarms delivered {}, resent {}, refused {}", alarms->stats().delivered.load(),
                 alarms->stats().resent.load(), alarms->stats().refused.load());
    alarms.reset();
  }
  auto& st = gateway.stats();
  spdlog::info("hl7: stopped; messages accepted {}, resent {}, errors {}, rejected {}", st.accepted.load(),
               st.resent.load(), st.errors.load(), st.rejected.load());
  return 0;
}
