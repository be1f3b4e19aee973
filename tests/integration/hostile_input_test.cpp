// Input an attacker or a careless client sends, class by class (issue 19):
// every refusal has the right code, names the field and quotes at most a
// bounded prefix of what was sent; the node keeps serving.

#include <sys/resource.h>

#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/integration/status_details.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;

namespace {

const std::string patient = "tenants/h1/patients/p1";
const std::string monitor = "tenants/h1/devices/mon1";

class hostile_input_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path());
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
    ASSERT_TRUE(client_->create_patient("h1", "p1", "ICU-1").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, patient).ok());
  }
  void TearDown() override { EXPECT_EQ(node_->stop(), 0) << node_->log(); }

  // INVALID_ARGUMENT naming `field`, with a message and details small
  // enough for any client, quoting no more than a prefix of the input.
  static void expect_bounded_refusal(const grpc::Status& st, const std::string& field) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message().substr(0, 300);
    EXPECT_LE(st.error_message().size(), 1024u);
    EXPECT_LE(st.error_details().size(), 4096u);
    auto fields = violated_fields(st);
    EXPECT_NE(std::find(fields.begin(), fields.end(), field), fields.end())
        << "expected a violation of " << field << ", got: " << st.error_message().substr(0, 300);
  }

  grpc::Status update_patient(const std::string& path, const std::string& region = "eu-west") {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdatePatientRequest req;
    req.mutable_patient()->set_name(patient);
    req.mutable_patient()->set_ward("ICU-2");
    req.mutable_patient()->set_home_region(region);
    req.mutable_update_mask()->add_paths(path);
    v1::Patient out;
    return client_->registry->UpdatePatient(&ctx, req, &out);
  }

  grpc::Status get_twin(const std::string& path) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::GetPatientTwinRequest req;
    req.set_name(patient);
    req.mutable_read_mask()->add_paths(path);
    v1::PatientTwin out;
    return client_->twins->GetPatientTwin(&ctx, req, &out);
  }

  grpc::Status create_patient(const std::string& id, const std::string& region, v1::Patient& out) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::CreatePatientRequest req;
    req.set_parent("tenants/h1");
    req.set_patient_id(id);
    req.mutable_patient()->set_ward("ICU-1");
    req.mutable_patient()->set_home_region(region);
    return client_->registry->CreatePatient(&ctx, req, &out);
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
};

}  // namespace

// Class 1: a reply that echoed a long input grew past the client's
// metadata limit, which turned INVALID_ARGUMENT into RESOURCE_EXHAUSTED.
TEST_F(hostile_input_test, errors_quote_only_a_bounded_prefix_of_what_was_sent) {
  for (size_t n : {size_t{4000}, size_t{64} << 10, size_t{1} << 20}) {
    std::string path(n, 'x');
    expect_bounded_refusal(update_patient(path), "update_mask.paths[0]");
    expect_bounded_refusal(get_twin(path), "read_mask.paths[0]");
  }
  {  // a filter (at most 2,000 bytes) whose only token is an unknown field
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::ListPatientTwinsRequest req;
    req.set_parent("tenants/h1");
    req.set_filter(std::string(1999, 'f') + " = 1");
    req.set_order_by(std::string(1999, 'o'));
    v1::ListPatientTwinsResponse out;
    auto st = client_->twins->ListPatientTwins(&ctx, req, &out);
    expect_bounded_refusal(st, "filter");
    expect_bounded_refusal(st, "order_by");
    for (auto& v : field_violations(st))
      EXPECT_LE(v.description().size(), 256u) << v.field();
  }
  {  // many bad settings: the details stay bounded too
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdateDesiredConfigRequest req;
    req.set_device(monitor);
    for (int i = 0; i < 64; ++i)
      (*req.mutable_desired()->mutable_settings())["s" + std::to_string(i)] = std::string(300, '\x01');
    v1::Device out;
    auto st = client_->registry->UpdateDesiredConfig(&ctx, req, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LE(st.error_details().size(), 4096u);
    EXPECT_EQ(field_violations(st).size(), 16u);
    EXPECT_NE(st.error_message().find("(and 63 more)"), std::string::npos) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::UpdateDesiredConfigRequest req;
    req.set_device(monitor);
    req.mutable_desired()->set_firmware(std::string(1 << 20, 'v'));
    v1::Device out;
    expect_bounded_refusal(client_->registry->UpdateDesiredConfig(&ctx, req, &out), "desired.firmware");
  }
  EXPECT_EQ(client_->patient_twin(patient).name(), patient);  // still serving
}

// Class 2: one rule set for every string and mask field, on create and
// update alike (docs/api.md, "Field rules").
TEST_F(hostile_input_test, home_region_is_checked_on_create_as_on_update_and_kept) {
  v1::Patient out;
  for (auto bad : {std::string(1 << 20, 'r'), std::string{"UPPER_case!"}}) {
    expect_bounded_refusal(create_patient("p2", bad, out), "patient.home_region");
    expect_bounded_refusal(update_patient("home_region", bad), "patient.home_region");
  }
  ASSERT_TRUE(create_patient("p3", "eu-west", out).ok());
  EXPECT_EQ(out.home_region(), "eu-west");
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::GetPatientRequest get;
  get.set_name("tenants/h1/patients/p3");
  v1::Patient read;
  ASSERT_TRUE(client_->registry->GetPatient(&ctx, get, &read).ok());
  EXPECT_EQ(read.home_region(), "eu-west");
  EXPECT_TRUE(update_patient("home_region", "us-east").ok());
}

TEST_F(hostile_input_test, a_mask_path_with_an_empty_segment_is_refused) {
  expect_bounded_refusal(get_twin("news2..total"), "read_mask.paths[0]");
  expect_bounded_refusal(get_twin("news2."), "read_mask.paths[0]");
  expect_bounded_refusal(update_patient("ward."), "update_mask.paths[0]");
  EXPECT_TRUE(get_twin("news2.total").ok());
}

TEST_F(hostile_input_test, notes_and_reasons_refuse_control_characters) {
  grpc::ClientContext ctx;
  api_client::deadline(ctx);
  v1::SilenceAlertsRequest req;
  req.set_patient(patient);
  req.mutable_duration()->set_seconds(60);
  req.set_reason("known AF\x1b[2J");
  v1::SilenceAlertsResponse out;
  grpc::ClientContext cctx;
  api_client::deadline(cctx);
  auto clinician = api_client{node_->channel_with(node_->token("h1", {"clinician"}, "dr-1"))};
  expect_bounded_refusal(clinician.alerts->SilenceAlerts(&cctx, req, &out), "reason");
}

// Class 3: a malformed device name is a per-reading INVALID_NAME whether
// or not a valid group sits beside it (it was PERMISSION_DENIED alone).
TEST_F(hostile_input_test, a_malformed_device_name_is_rejected_per_reading_alone_or_beside_another) {
  auto t = now_ms();
  auto alone = api_client::request("tenants/h1/devices/Bad Name!", {{1, t, v1::METRIC_HEART_RATE, 70}});
  auto beside = alone;
  auto* ok = beside.add_devices();
  ok->set_device(monitor);
  ok->add_sequence(1);
  ok->add_time_ms(t);
  ok->add_metric(v1::METRIC_HEART_RATE);
  ok->add_value(70);
  auto device = api_client{node_->channel_with(node_->token("h1", {"device"}, "mon1", "mon1"))};
  for (auto* via : {client_.get(), &device}) {
    for (auto* req : {&alone, &beside}) {
      v1::IngestResponse resp;
      auto st = via->send(*req, resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_GE(resp.rejections_size(), 1);
      EXPECT_EQ(resp.rejections(0).reason(), v1::REJECTION_REASON_INVALID_NAME);
      EXPECT_EQ(resp.rejections(0).field(), "devices[0].device");
    }
  }
  // Another tenant's device is still refused whole.
  auto other = api_client::request("tenants/h2/devices/mon1", {{1, t, v1::METRIC_HEART_RATE, 70}});
  v1::IngestResponse resp;
  EXPECT_EQ(client_->send(other, resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

// Class 6: a huge bearer token dropped the connection (the next call on
// the channel failed UNAVAILABLE); it is UNAUTHENTICATED and the channel
// stays usable.
TEST_F(hostile_input_test, an_oversized_token_is_unauthenticated_and_the_channel_stays_usable) {
  auto channel = node_->channel_with("");
  api_client bare{channel};
  auto call = [&](const std::string& bearer) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    ctx.AddMetadata("authorization", "Bearer " + bearer);
    v1::GetPatientRequest req;
    req.set_name(patient);
    v1::Patient out;
    return bare.registry->GetPatient(&ctx, req, &out);
  };
  for (size_t n : {size_t{16} << 10, size_t{1} << 20}) {
    auto st = call(std::string(n, 'a'));
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << n << ": " << st.error_message();
    auto next = call(node_->token());
    EXPECT_TRUE(next.ok()) << n << ": " << next.error_message();
  }
}

namespace {

/// Client sockets held open against a listener, each having sent `prefix`.
class half_open_clients {
public:
  half_open_clients(uint16_t port, size_t n, const std::string& prefix) {
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    for (size_t i = 0; i < n; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (fd >= 0)
          ::close(fd);
        continue;
      }
      if (!prefix.empty())
        (void)::send(fd, prefix.data(), prefix.size(), MSG_NOSIGNAL);
      fds_.push_back(fd);
    }
  }
  ~half_open_clients() {
    for (int fd : fds_)
      ::close(fd);
  }
  size_t connected() const { return fds_.size(); }
  /// How many the server has not closed (a read would block).
  size_t still_open() const {
    size_t n = 0;
    for (int fd : fds_) {
      char c;
      auto r = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
      n += r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return n;
  }

private:
  std::vector<int> fds_;
};

// The wall time of one GET /healthz (curl, 1 s at most); -1 on failure.
double health_seconds(const node_process& node) {
  auto t0 = std::chrono::steady_clock::now();
  auto out = run_command(node.curl("/healthz", "--max-time 1 -o /dev/null -w '%{http_code}'"));
  auto dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out == "200" ? dt : -1;
}

}  // namespace

// Class 5: ~1,100 connections that sent partial headers made /healthz
// refuse connections for ~9 s (a liveness probe restarts a healthy node).
TEST_F(hostile_input_test, half_open_connections_neither_starve_health_nor_stay_open) {
  temp_dir plain_dir;
  node_process plain{plain_dir.path(), {"--insecure-plaintext"}};
  ASSERT_TRUE(plain.wait_ready()) << plain.log();
  struct attack {
    const node_process* node;
    std::string prefix;
  };
  // Plain HTTP: partial headers. HTTPS: a TLS handshake never finished.
  for (auto& a : {attack{&plain, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "},
                  attack{node_.get(), std::string{"\x16\x03\x01", 3}}}) {
    half_open_clients attackers{a.node->http_port(), 1100, a.prefix};
    ASSERT_GE(attackers.connected(), 1000u);
    for (int i = 0; i < 8; ++i) {
      auto dt = health_seconds(*a.node);
      EXPECT_GE(dt, 0) << "probe " << i << " failed";
      EXPECT_LT(dt, 1.0) << "probe " << i;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    // Bounded per peer at once; the rest time out within the header deadline.
    EXPECT_LE(attackers.still_open(), 64u);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_EQ(attackers.still_open(), 0u);
  }
  EXPECT_EQ(plain.stop(), 0) << plain.log();
}

TEST_F(hostile_input_test, half_open_connections_do_not_starve_the_grpc_listener) {
  half_open_clients attackers{node_->grpc_port(), 1100, "PRI * HTTP/2.0\r\n"};
  ASSERT_GE(attackers.connected(), 1000u);
  for (int i = 0; i < 4; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    api_client fresh{node_->channel()};  // a new connection each time
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::GetPatientRequest req;
    req.set_name(patient);
    v1::Patient out;
    auto st = fresh.registry->GetPatient(&ctx, req, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  }
}

// Class 7: without a node key, pseudonyms were keyed with a fixed key, the
// same on every node, so a guessed patient id gave its pseudonym away.
TEST_F(hostile_input_test, pseudonyms_differ_between_unrelated_nodes_and_last_across_restarts) {
  auto erase = [](api_client& via, std::string& pseudonym) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::ErasePatientRequest req;
    req.set_name(patient);
    v1::ErasePatientResponse out;
    auto st = via.registry->ErasePatient(&ctx, req, &out);
    pseudonym = out.pseudonym();
    return st;
  };
  temp_dir other_dir;
  auto other = std::make_unique<node_process>(other_dir.path());
  ASSERT_TRUE(other->wait_ready()) << other->log();
  api_client there{other->channel()};
  ASSERT_TRUE(there.create_patient("h1", "p1", "ICU-1").ok());
  std::string here_pseudonym, there_pseudonym;
  ASSERT_TRUE(erase(*client_, here_pseudonym).ok());
  ASSERT_TRUE(erase(there, there_pseudonym).ok());
  EXPECT_EQ(here_pseudonym.size(), 16u);
  EXPECT_NE(here_pseudonym, there_pseudonym);
  EXPECT_EQ(other->stop(), 0);
  // Restarted, a node still knows the erased id by its pseudonym.
  other = std::make_unique<node_process>(other_dir.path());
  ASSERT_TRUE(other->wait_ready()) << other->log();
  api_client again{other->channel()};
  EXPECT_EQ(again.create_patient("h1", "p1", "ICU-1").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(other->stop(), 0);
}

// Class 8: the pending-work gauge was set only while the sequencer waited
// for twins, so it stayed at the last backlog; refusals were counted for
// the ingest queue only.
TEST_F(hostile_input_test, metrics_tell_pending_work_and_every_refusal_by_reason) {
  auto t = now_ms();
  std::vector<api_client::reading> rs;
  for (uint64_t i = 1; i <= 10'000; ++i)
    rs.push_back({i, t - 1000, v1::METRIC_HEART_RATE, 60.0 + static_cast<double>(i % 40)});
  for (int k = 0; k < 20; ++k) {  // 200,000 readings in 20 requests
    for (auto& r : rs)
      r.seq += 10'000;
    v1::IngestResponse resp;
    ASSERT_TRUE(client_->send(api_client::request(monitor, rs), resp).ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(node_->metric("healthtwin_ingest_pending_work"), 0);

  temp_dir dir;
  node_process limited{dir.path(), {"--rate-limit-calls-per-s=0.1"}};
  ASSERT_TRUE(limited.wait_ready()) << limited.log();
  api_client via{limited.channel()};
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::GetPatientRequest req;
    req.set_name(patient);
    v1::Patient out;
    refused += via.registry->GetPatient(&ctx, req, &out).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  }
  EXPECT_GE(refused, 3);  // a burst of twice the rate passes
  EXPECT_EQ(labelled_metric(limited, "healthtwin_api_refusals_total",
                            {"reason=\"rate_limit_calls\"", "code=\"RESOURCE_EXHAUSTED\""}),
            refused);
  EXPECT_EQ(labelled_metric(limited, "healthtwin_grpc_server_handled_total",
                            {"grpc_method=\"GetPatient\"", "grpc_code=\"RESOURCE_EXHAUSTED\""}),
            refused);
  EXPECT_EQ(limited.stop(), 0);
}

// Class 10: a NEWS2 alert raised at LOW while the score had already
// reached the medium band read "medium (urgent review)".
TEST_F(hostile_input_test, a_news2_alert_says_the_response_of_the_priority_it_has) {
  auto t0 = now_ms() - 120'000;
  uint64_t seq = 0;
  auto frame = [&](int64_t t, double hr, double temp) {
    v1::IngestResponse resp;
    auto st = client_->send(api_client::request(monitor, {{++seq, t, v1::METRIC_RESPIRATION_RATE, 26},
                                                          {++seq, t, v1::METRIC_HEART_RATE, hr},
                                                          {++seq, t, v1::METRIC_SPO2, 98},
                                                          {++seq, t, v1::METRIC_SYSTOLIC_BP, 120},
                                                          {++seq, t, v1::METRIC_TEMPERATURE, temp}}),
                            resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(resp.accepted(), 5u);
  };
  auto news2_alert = [&]() -> v1::Alert {
    for (int i = 0; i < 100; ++i) {
      for (auto& a : client_->list_alerts("tenants/h1"))
        if (a.kind() == v1::ALERT_KIND_NEWS2)
          return a;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return {};
  };
  // RR 26 alone scores 3 (low-medium band); from 20 s on HR 95 and 38.5 °C
  // make it 5 (medium band) once NEWS2 observes them (30 s smoothing at 5 s
  // samples: about 35 s later): LOW's onset (30 s) ends before MEDIUM's.
  for (int64_t s = 0; s <= 35; s += 5)
    frame(t0 + s * 1000, s < 20 ? 88 : 95, s < 20 ? 37.0 : 38.5);
  auto raised = news2_alert();
  ASSERT_EQ(raised.priority(), v1::PRIORITY_LOW) << raised.ShortDebugString();
  EXPECT_EQ(raised.message().find("urgent review"), std::string::npos) << raised.message();
  EXPECT_NE(raised.message().find("low"), std::string::npos) << raised.message();
  for (int64_t s = 40; s <= 115; s += 5)
    frame(t0 + s * 1000, 95, 38.5);
  v1::Alert medium;
  for (int i = 0; i < 100 && medium.priority() != v1::PRIORITY_MEDIUM; ++i) {
    medium = news2_alert();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(medium.priority(), v1::PRIORITY_MEDIUM) << medium.ShortDebugString();
  EXPECT_NE(medium.message().find("medium: urgent review"), std::string::npos) << medium.message();
}

// Class 9: after a clean stop the data directory held the WAL (not flushed
// at close) and ingest log records deleted behind the checkpoint.
TEST_F(hostile_input_test, a_clean_stop_leaves_about_the_data_and_no_write_ahead_log) {
  auto t = now_ms() - 600'000;
  std::vector<api_client::reading> rs;
  for (uint64_t i = 1; i <= 10'000; ++i)
    rs.push_back({i, t + static_cast<int64_t>(i), v1::METRIC_HEART_RATE, 70});
  for (int k = 0; k < 30; ++k) {  // 300,000 readings
    v1::IngestResponse resp;
    ASSERT_TRUE(client_->send(api_client::request(monitor, rs), resp).ok());
    ASSERT_EQ(resp.accepted(), 10'000u) << resp.rejections(0).ShortDebugString();
    for (auto& r : rs) {
      r.seq += 10'000;
      r.time_ms += 10'000;
    }
  }
  ASSERT_EQ(node_->stop(), 0) << node_->log();
  uint64_t wal = 0, total = 0;
  for (auto& f : std::filesystem::directory_iterator(dir_.path() / "db")) {
    total += f.file_size();
    if (f.path().extension() == ".log")
      wal += f.file_size();
  }
  EXPECT_EQ(wal, 0u);
  // 300,000 readings of one patient: a few hundred kB of series, registry,
  // audit and snapshots; the 3 MB of ingest log behind the checkpoint gone.
  EXPECT_LT(total, 1'500'000u) << total;
}

// Class 4: one reading with sequence 2^64-1 was accepted, after which the
// device's sequence 1 was OUTSIDE_WINDOW forever.
TEST_F(hostile_input_test, a_device_cannot_wedge_itself_and_an_operator_can_reset_its_numbers) {
  auto t = now_ms();
  auto send = [&](uint64_t seq, v1::IngestResponse& resp) {
    return client_->send(api_client::request(monitor, {{seq, t, v1::METRIC_HEART_RATE, 70}}), resp);
  };
  auto reason_of = [&](uint64_t seq) {
    v1::IngestResponse resp;
    EXPECT_TRUE(send(seq, resp).ok());
    return resp.rejections_size() ? resp.rejections(0).reason() : v1::REJECTION_REASON_UNSPECIFIED;
  };
  EXPECT_EQ(reason_of(UINT64_MAX), v1::REJECTION_REASON_INVALID_SEQUENCE);
  EXPECT_EQ(reason_of((uint64_t{1} << 53) + 1), v1::REJECTION_REASON_INVALID_SEQUENCE);
  EXPECT_EQ(reason_of(1), v1::REJECTION_REASON_UNSPECIFIED);  // not wedged
  // A number far ahead is taken (up to 2^53) and moves the window...
  EXPECT_EQ(reason_of(uint64_t{1} << 53), v1::REJECTION_REASON_UNSPECIFIED);
  EXPECT_EQ(reason_of(2), v1::REJECTION_REASON_OUTSIDE_WINDOW);
  // ...until an operator resets the device's numbers.
  auto reset = [&](api_client& via) {
    grpc::ClientContext ctx;
    api_client::deadline(ctx);
    v1::ResetDeviceSequenceRequest req;
    req.set_device(monitor);
    v1::Device out;
    return via.registry->ResetDeviceSequence(&ctx, req, &out);
  };
  api_client device{node_->channel_with(node_->token("h1", {"device"}, "mon1", "mon1"))};
  EXPECT_EQ(reset(device).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(reset(*client_).ok());
  EXPECT_EQ(reason_of(2), v1::REJECTION_REASON_UNSPECIFIED);
  EXPECT_EQ(client_->device_twin(monitor).last_sequence(), 2u);
  // A crash right after: the replay forgets at the same place.
  node_->crash();
  node_ = std::make_unique<node_process>(dir_.path());
  ASSERT_TRUE(node_->wait_ready()) << node_->log();
  client_ = std::make_unique<api_client>(node_->channel());
  EXPECT_EQ(reason_of(2), v1::REJECTION_REASON_DUPLICATE);
  EXPECT_EQ(reason_of(3), v1::REJECTION_REASON_UNSPECIFIED);
  EXPECT_EQ(client_->device_twin(monitor).last_sequence(), 3u);
}
