// Twin watches are pushed (issue 24): a watch is told of every kind of
// change its twin has — readings, an alert acknowledged at the alert hub, a
// registry change, a device going offline with no event at all — and reads
// nothing while its twin does not change; many watches of one twin share
// its changes; the node's stop ends them.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin;
using namespace healthtwin::testing;

namespace {

const std::string p1 = "tenants/h1/patients/p1";
const std::string m1 = "tenants/h1/devices/m1";

class twin_watch_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path(), std::vector<std::string>{"--heartbeat-timeout-ms=2000"});
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
    ASSERT_TRUE(client_->create_patient("h1", "p1", "ICU-3").ok());
    ASSERT_TRUE(client_->create_device("h1", "m1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, p1).ok());
  }

  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), 0) << node_->log();
    }
  }

  // SpO2 readings of m1 (ms before now, value), numbered on.
  void spo2(std::vector<std::pair<int64_t, double>> values) {
    std::vector<api_client::reading> rs;
    auto t = now_ms();
    for (auto [ago, v] : values)
      rs.push_back({seq_++, t - ago, v1::METRIC_SPO2, v});
    v1::IngestResponse resp;
    ASSERT_TRUE(client_->send(api_client::request(m1, rs, batch_++), resp).ok());
    ASSERT_EQ(resp.accepted(), rs.size());
  }

  double reads(const char* kind) {
    return labelled_metric(*node_, "healthtwin_twin_watch_reads_total", {std::string{"kind=\""} + kind + "\""});
  }

  // Reads until `done(message)` or the stream ends; false when it ended.
  template <class Twin, class Reader, class Done>
  static bool read_until(Reader& stream, Twin& m, Done done) {
    while (stream->Read(&m))
      if (done(m))
        return true;
    return false;
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
  uint64_t seq_ = 1, batch_ = 1;
};

}  // namespace

TEST_F(twin_watch_test, a_patient_watch_is_pushed_readings_alerts_and_registry_changes) {
  grpc::ClientContext ctx;
  api_client::deadline(ctx, 30);
  v1::WatchPatientTwinRequest req;
  req.set_name(p1);
  req.mutable_min_interval()->set_nanos(100'000'000);
  auto stream = client_->twins->WatchPatientTwin(&ctx, req);
  v1::PatientTwin twin;
  ASSERT_TRUE(stream->Read(&twin));
  EXPECT_EQ(twin.ward(), "ICU-3");

  // Readings, then the alert they raise (the alert hub tells the watch).
  spo2({{200'000, 97}, {8'000, 84}, {0, 84}});  // a desaturation held past its onset delay
  ASSERT_TRUE(read_until(stream, twin, [](auto& t) { return t.active_alerts_size() > 0; }));
  auto alert = twin.active_alerts(0).name();
  EXPECT_NE(twin.active_alerts(0).state(), v1::ALERT_STATE_ACKNOWLEDGED);

  grpc::ClientContext ack_ctx;
  api_client::deadline(ack_ctx);
  v1::AcknowledgeAlertRequest ack;
  ack.set_name(alert);
  ack.set_acknowledged_by("nurse-7");
  v1::Alert acked;
  ASSERT_TRUE(client_->alerts->AcknowledgeAlert(&ack_ctx, ack, &acked).ok());
  ASSERT_TRUE(read_until(stream, twin, [](auto& t) {
    return t.active_alerts_size() > 0 && t.active_alerts(0).state() == v1::ALERT_STATE_ACKNOWLEDGED;
  })) << "the acknowledgement was not pushed";

  // A move to another ward (a registry change the shard reloads).
  grpc::ClientContext move_ctx;
  api_client::deadline(move_ctx);
  v1::UpdatePatientRequest move;
  move.mutable_patient()->set_name(p1);
  move.mutable_patient()->set_ward("HDU-1");
  move.mutable_update_mask()->add_paths("ward");
  v1::Patient moved;
  ASSERT_TRUE(client_->registry->UpdatePatient(&move_ctx, move, &moved).ok());
  ASSERT_TRUE(read_until(stream, twin, [](auto& t) { return t.ward() == "HDU-1"; }));

  // Idle: the twin does not change, the watch reads nothing.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a last read in flight lands
  auto before = reads("patient");
  ASSERT_GT(before, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(reads("patient"), before) << "an idle watch read its twin";
  ctx.TryCancel();
  while (stream->Read(&twin)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(twin_watch_test, a_device_watch_sees_the_device_go_offline_with_no_event) {
  spo2({{0, 97}});
  grpc::ClientContext ctx;
  api_client::deadline(ctx, 30);
  v1::WatchDeviceTwinRequest req;
  req.set_name(m1);
  req.mutable_read_mask()->add_paths("online");
  req.mutable_read_mask()->add_paths("readings_accepted");
  req.mutable_min_interval()->set_nanos(100'000'000);
  auto stream = client_->twins->WatchDeviceTwin(&ctx, req);
  v1::DeviceTwin twin;
  ASSERT_TRUE(read_until(stream, twin, [](auto& t) { return t.online(); }));
  auto seen = std::chrono::steady_clock::now();
  // --heartbeat-timeout-ms=2000: nothing else happens; the watch says so.
  ASSERT_TRUE(read_until(stream, twin, [](auto& t) { return !t.online(); }));
  EXPECT_LT(std::chrono::steady_clock::now() - seen, std::chrono::seconds(5));
  EXPECT_EQ(twin.readings_accepted(), 1u);
  spo2({{0, 96}});
  ASSERT_TRUE(read_until(stream, twin, [](auto& t) { return t.online(); })) << "back online with a reading";
  EXPECT_EQ(twin.readings_accepted(), 2u);
  ctx.TryCancel();
  while (stream->Read(&twin)) {
  }
}

TEST_F(twin_watch_test, many_watches_of_one_twin_each_get_its_change_and_the_stop_ends_them) {
  constexpr int n = 50;
  struct watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::PatientTwin>> stream;
    v1::PatientTwin twin;
  };
  std::vector<std::unique_ptr<watch>> watches;
  for (int i = 0; i < n; ++i) {
    auto& w = *watches.emplace_back(std::make_unique<watch>());
    api_client::deadline(w.ctx, 60);
    v1::WatchPatientTwinRequest req;
    req.set_name(p1);
    req.mutable_read_mask()->add_paths("readings_applied");
    req.mutable_min_interval()->set_nanos(100'000'000);
    w.stream = client_->twins->WatchPatientTwin(&w.ctx, req);
    ASSERT_TRUE(w.stream->Read(&w.twin));
    EXPECT_EQ(w.twin.readings_applied(), 0u);
  }
  EXPECT_EQ(labelled_metric(*node_, "healthtwin_twin_watches", {"kind=\"patient\""}), n);
  auto reads_before = reads("patient");
  spo2({{1000, 97}, {0, 96}});
  for (auto& w : watches) {
    ASSERT_TRUE(w->stream->Read(&w->twin));
    if (w->twin.readings_applied() < 2) {  // the two may come as two changes
      ASSERT_TRUE(w->stream->Read(&w->twin));
    }
    EXPECT_EQ(w->twin.readings_applied(), 2u);
  }
  // Watches of one twin due together share one read of it (one change may
  // reach them in a few batches; without sharing it is a read per watch).
  EXPECT_LE(reads("patient") - reads_before, n / 2);
  // A clean stop ends every watch (CANCELLED) and the node exits 0.
  EXPECT_EQ(node_->stop(), 0) << node_->log();
  node_.reset();
  for (auto& w : watches) {
    while (w->stream->Read(&w->twin)) {
    }
    auto st = w->stream->Finish();
    EXPECT_TRUE(st.error_code() == grpc::StatusCode::CANCELLED || st.error_code() == grpc::StatusCode::UNAVAILABLE)
        << st.error_code() << " " << st.error_message();
  }
}

// Watches are cheap now, so a caller could open them without end: one
// principal holds at most --max-watches-per-principal, the node at most
// --max-watches; the next is refused RESOURCE_EXHAUSTED with retry info,
// another caller is not affected, and a closed watch frees its slot.
TEST(twin_watch_limits, a_caller_holds_a_bounded_number_of_watches) {
  temp_dir dir;
  node_process node{dir.path(), {"--max-watches-per-principal=3", "--max-watches=5"}};
  ASSERT_TRUE(node.wait_ready()) << node.log();
  api_client a{node.channel()};
  ASSERT_TRUE(a.create_patient("h1", "p1", "ICU-3").ok());
  struct watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::PatientTwin>> stream;
    v1::PatientTwin twin;
  };
  auto open = [&](api_client& c) {
    auto w = std::make_unique<watch>();
    api_client::deadline(w->ctx, 30);
    v1::WatchPatientTwinRequest req;
    req.set_name(p1);
    w->stream = c.twins->WatchPatientTwin(&w->ctx, req);
    return w;
  };
  std::vector<std::unique_ptr<watch>> mine;
  for (int i = 0; i < 3; ++i) {
    mine.push_back(open(a));
    ASSERT_TRUE(mine.back()->stream->Read(&mine.back()->twin));
  }
  auto refused = open(a);
  EXPECT_FALSE(refused->stream->Read(&refused->twin));
  auto st = refused->stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("too many open twin watches"), std::string::npos) << st.error_message();

  // Another caller of the same tenant still may, up to the node's 5.
  api_client b{node.channel_with(node.token("h1", {"clinician"}, "nurse-2"))};
  auto other = open(b), other2 = open(b);
  ASSERT_TRUE(other->stream->Read(&other->twin));
  ASSERT_TRUE(other2->stream->Read(&other2->twin));
  auto over_node = open(b);
  EXPECT_FALSE(over_node->stream->Read(&over_node->twin));
  EXPECT_EQ(over_node->stream->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // Closing one frees its slot.
  mine[0]->ctx.TryCancel();
  while (mine[0]->stream->Read(&mine[0]->twin)) {
  }
  mine[0]->stream->Finish();
  bool opened = false;
  for (int attempt = 0; attempt < 50 && !opened; ++attempt) {  // the slot is given back at the call's end
    auto again = open(a);
    opened = again->stream->Read(&again->twin);
    if (opened)
      mine[0] = std::move(again);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(opened) << "a closed watch did not free its slot";
  for (auto* w : {mine[0].get(), mine[1].get(), mine[2].get(), other.get(), other2.get()})
    w->ctx.TryCancel();
  for (auto* w : {mine[0].get(), mine[1].get(), mine[2].get(), other.get(), other2.get()}) {
    while (w->stream->Read(&w->twin)) {
    }
    w->stream->Finish();
  }
  EXPECT_EQ(node.stop(), 0) << node.log();
}
