// HL7 v2 from bedside monitors (issue 22, IHE PCD-01) through the real
// healthtwin-hl7 gateway into a real node: ACKs after the durable write, one
// per message and in order, resends never charted twice (also across a
// SIGKILL of the gateway), malformed, oversized, unterminated and slow
// messages answered or cut off without harm to the next sender.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "services/hl7/hl7_message.hpp"
#include "tests/integration/api_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin::testing;
namespace v1 = healthtwin::v1;
namespace hl7 = healthtwin::hl7;

namespace {

/// A raw MLLP client: frames, sends, reads frames back.
class mllp_client {
public:
  explicit mllp_client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~mllp_client() { ::close(fd_); }
  bool connected() const { return connected_; }

  bool send_raw(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  bool send(const std::string& message) { return send_raw("\x0b" + message + "\x1c\r"); }

  /// The next frame's content; empty when the connection closed or `ms` passed.
  std::string read_frame(int ms = 15'000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      auto sb = buf_.find('\x0b');
      auto eb = buf_.find("\x1c\r");
      if (sb != std::string::npos && eb != std::string::npos && eb > sb) {
        auto frame = buf_.substr(sb + 1, eb - sb - 1);
        buf_.erase(0, eb + 2);
        return frame;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0)
        return {};
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0)
        return {};
      char chunk[4096];
      auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0)
        return {};
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  /// True when the server closed the connection within `ms`.
  bool closed_within(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0)
      return false;
    char c;
    return ::recv(fd_, &c, 1, 0) <= 0;
  }

private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

struct ack {
  std::string code, control_id, error;
};

ack read_ack(const std::string& frame) {
  hl7::error why;
  auto m = hl7::message::parse(frame, why);
  if (!m)
    return {"(no ACK: " + why.what + ")", "", ""};
  ack a;
  for (auto& s : m->segments()) {
    if (s.id() == "MSA") {
      a.code = m->value(s, 1);
      a.control_id = m->value(s, 2);
    } else if (s.id() == "ERR" && a.error.empty()) {
      a.error = m->value(s, 8);
    }
  }
  return a;
}

std::string hl7_time(int64_t ms) {
  auto t = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S+0000", &tm);
  return buf;
}

// An ORU^R01 as a PCD-01 gateway sends it: the MDS row names the monitor.
std::string oru(const std::string& control_id, const std::string& device, int64_t t, double hr, double spo2,
                const std::string& spo2_status = "F") {
  return "MSH|^~\\&|PCD-GW^0123456789ABCDEF^EUI-64|ICU||HEALTHTWIN|" + hl7_time(t) +
         "||ORU^R01^ORU_R01|" + control_id + "|P|2.6|||NE|AL\r"
         "PID|||P1^^^Hosp^PI\r"
         "PV1||I|ICU^1^1\r"
         "OBR|1||" + control_id + "^PCD-GW|182777000^monitoring of patient^SCT|||" + hl7_time(t) + "\r"
         "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||" + device + "^EUI-64\r"
         "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|" + std::to_string(hr) + "|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F\r"
         "OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|" + std::to_string(spo2) + "|262688^MDC_DIM_PERCENT^MDC|||||" + spo2_status + "\r";
}

class hl7_gateway_test : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = std::make_unique<node_process>(dir_.path() / "node");
    ASSERT_TRUE(node_->wait_ready()) << node_->log();
    client_ = std::make_unique<api_client>(node_->channel());
    ASSERT_TRUE(client_->create_patient("h1", "p1", "ICU-1").ok());
    ASSERT_TRUE(client_->create_device("h1", "mon-1", v1::DEVICE_TYPE_BEDSIDE_MONITOR, "tenants/h1/patients/p1").ok());
    write_text(dir_.path() / "service.jwt", node_->token("h1", {"service"}, "hl7-gateway"));
    start_gateway();
  }
  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->kill(SIGTERM), 0) << gateway_log();
    }
    EXPECT_EQ(node_->stop(), 0) << node_->log();
  }

  void start_gateway(const std::vector<std::string>& extra = {}) {
    port_ = free_port();
    write_text(dir_.path() / "beds.json", R"({"ICU^1^1": ["mon-1"], "ICU^1^2": ["mon-2", "pump-2"]})");
    std::vector<std::string> argv{HEALTHTWIN_HL7_BINARY, "--listen=127.0.0.1:" + std::to_string(port_),
                                  "--bed-map=" + (dir_.path() / "beds.json").string(),
                                  "--tenant=h1", "--data-dir=" + (dir_.path() / "hl7").string(),
                                  "--max-message-bytes=262144"};
    for (auto& a : node_->client_args(dir_.path() / "service.jwt"))
      argv.push_back(a);
    argv.insert(argv.end(), extra.begin(), extra.end());
    gateway_ = std::make_unique<child_process>(argv, (dir_.path() / "hl7.log").string());
    for (int i = 0; i < 200; ++i) {
      if (mllp_client{port_}.connected())
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "the gateway did not listen: " << gateway_log();
  }

  std::string gateway_log() const { return read_file(dir_.path() / "hl7.log"); }

  std::vector<std::pair<int64_t, double>> heart_rates() {
    return client_->history("tenants/h1/patients/p1", v1::METRIC_HEART_RATE, 0, now_ms() + 600'000);
  }

  temp_dir dir_;
  std::unique_ptr<node_process> node_;
  std::unique_ptr<api_client> client_;
  std::unique_ptr<child_process> gateway_;
  uint16_t port_ = 0;
};

}  // namespace

TEST_F(hl7_gateway_test, monitor_numerics_reach_the_twin_and_each_ack_answers_its_own_message) {
  mllp_client c{port_};
  ASSERT_TRUE(c.connected());
  int64_t t0 = now_ms() - 10 * 60'000;
  // Three messages in one write: three ACKs, in order, each naming its own.
  ASSERT_TRUE(c.send_raw("garbage before a frame is ignored\x0b" + oru("M-1", "mon-1", t0, 71, 97) + "\x1c\r\x0b" +
                         oru("M-2", "mon-1", t0 + 60'000, 72, 96) + "\x1c\r\x0b" +
                         oru("M-3", "mon-1", t0 + 120'000, 73, 0, "X") + "\x1c\r"));
  for (auto id : {"M-1", "M-2", "M-3"}) {
    auto a = read_ack(c.read_frame());
    EXPECT_EQ(a.code, "AA") << a.error;
    EXPECT_EQ(a.control_id, id);
  }
  auto hr = heart_rates();
  ASSERT_EQ(hr.size(), 3u);
  EXPECT_EQ(hr[2], (std::pair<int64_t, double>{t0 / 1000 * 1000 + 120'000, 73}));
  auto twin = client_->patient_twin("tenants/h1/patients/p1");
  auto* spo2 = find_vital(twin, v1::METRIC_SPO2);
  ASSERT_NE(spo2, nullptr);
  EXPECT_EQ(spo2->value(), 96);  // the X (cannot be obtained) reading is not charted
  // An earlier measurement sent late goes to the history.
  EXPECT_EQ(read_ack((c.send(oru("M-0", "mon-1", t0 - 60'000, 70, 97)), c.read_frame())).code, "AA");
  EXPECT_EQ(heart_rates().size(), 4u);
}

TEST_F(hl7_gateway_test, resends_are_never_charted_twice_even_across_a_sigkill_of_the_gateway) {
  int64_t t0 = now_ms() - 10 * 60'000;
  {
    mllp_client c{port_};
    ASSERT_TRUE(c.send(oru("R-1", "mon-1", t0, 80, 97)));
    EXPECT_EQ(read_ack(c.read_frame()).code, "AA");
    ASSERT_TRUE(c.send(oru("R-1", "mon-1", t0, 80, 97)));  // the ACK was "lost": resent
    EXPECT_EQ(read_ack(c.read_frame()).code, "AA");
    ASSERT_TRUE(c.send(oru("R-2", "mon-1", t0 + 60'000, 81, 97)));
    EXPECT_EQ(read_ack(c.read_frame()).code, "AA");
  }
  gateway_->kill(SIGKILL);
  start_gateway();
  mllp_client c{port_};
  for (auto [id, dt, hr] : {std::tuple{"R-1", 0, 80}, {"R-2", 60'000, 81}, {"R-3", 120'000, 82}}) {
    ASSERT_TRUE(c.send(oru(id, "mon-1", t0 + dt, hr, 97)));
    auto a = read_ack(c.read_frame());
    EXPECT_EQ(a.code, "AA") << a.error;
    EXPECT_EQ(a.control_id, id);
  }
  EXPECT_EQ(heart_rates().size(), 3u);
  // Stored once each: a reading stored twice at one time would not show in
  // the history, so count what the device twin accepted.
  EXPECT_EQ(client_->device_twin("tenants/h1/devices/mon-1").readings_accepted(), 6u);
  // The same control id with other observations is refused, not stored.
  ASSERT_TRUE(c.send(oru("R-3", "mon-1", t0 + 120'000, 99, 97)));
  auto reused = read_ack(c.read_frame());
  EXPECT_EQ(reused.code, "AE");
  EXPECT_NE(reused.error.find("already used"), std::string::npos) << reused.error;
  EXPECT_EQ(heart_rates().size(), 3u);
  EXPECT_EQ(client_->device_twin("tenants/h1/devices/mon-1").readings_accepted(), 6u);
}

TEST_F(hl7_gateway_test, bad_messages_get_ar_or_ae_naming_segment_and_field_and_nothing_is_charted) {
  mllp_client c{port_};
  int64_t t = now_ms() - 60'000;
  auto bad_value = oru("B-1", "mon-1", t, 80, 97);
  bad_value.replace(bad_value.find("|80.000000|"), 11, "|8o|");
  ASSERT_TRUE(c.send(bad_value));
  auto a = read_ack(c.read_frame());
  EXPECT_EQ(a.code, "AE");
  EXPECT_EQ(a.control_id, "B-1");
  EXPECT_NE(a.error.find("OBX-5"), std::string::npos) << a.error;

  ASSERT_TRUE(c.send("MSH|^~\\&|ADT|H||HT|20261206101500||ADT^A31|B-2|P|2.5\rPID|||1\r"));
  a = read_ack(c.read_frame());
  EXPECT_EQ(a.code, "AR");
  EXPECT_NE(a.error.find("MSH-9"), std::string::npos) << a.error;

  ASSERT_TRUE(c.send("MSH|^~\\&|GW|H||HT|20261206101500||ORU^R01|B-3|P|2.6\rbad segment\r"));
  a = read_ack(c.read_frame());
  EXPECT_EQ(a.code, "AR");
  EXPECT_EQ(a.control_id, "B-3");
  EXPECT_NE(a.error.find("segment 2"), std::string::npos) << a.error;

  ASSERT_TRUE(c.send(oru("B-4", "mon-404", t, 80, 97)));  // not registered
  a = read_ack(c.read_frame());
  EXPECT_EQ(a.code, "AE");
  EXPECT_NE(a.error.find("not registered"), std::string::npos) << a.error;

  // 1 MiB in one message: refused, and the connection still serves.
  auto big = oru("B-5", "mon-1", t, 80, 97);
  for (int i = 0; i < 16'000; ++i)
    big += "NTE|" + std::to_string(i) + "|L|" + std::string(60, 'x') + "\r";
  ASSERT_TRUE(c.send(big));
  a = read_ack(c.read_frame());
  EXPECT_EQ(a.code, "AR");
  EXPECT_EQ(a.control_id, "B-5");
  EXPECT_NE(a.error.find("larger than 262144 bytes"), std::string::npos) << a.error;
  ASSERT_TRUE(c.send(oru("B-6", "mon-1", t, 80, 97)));
  EXPECT_EQ(read_ack(c.read_frame()).code, "AA");
  EXPECT_EQ(heart_rates().size(), 1u);
}

TEST_F(hl7_gateway_test, unterminated_and_slow_senders_are_cut_off_without_blocking_others) {
  EXPECT_EQ(gateway_->kill(SIGTERM), 0);
  start_gateway({"--message-timeout-ms=1000"});
  int64_t t = now_ms() - 60'000;
  // An unterminated frame, then the sender goes away: nothing is ACKed or stored.
  {
    mllp_client c{port_};
    auto msg = oru("U-1", "mon-1", t, 80, 97);
    ASSERT_TRUE(c.send_raw("\x0b" + msg.substr(0, msg.size() / 2)));
  }
  // A sender trickling a message: another sender is served meanwhile.
  mllp_client slow{port_};
  ASSERT_TRUE(slow.send_raw("\x0bMSH|^~\\&|"));
  mllp_client fast{port_};
  ASSERT_TRUE(fast.send(oru("F-1", "mon-1", t, 80, 97)));
  auto a = read_ack(fast.read_frame(5'000));
  EXPECT_EQ(a.code, "AA") << a.error;
  EXPECT_EQ(heart_rates().size(), 1u);
  // The trickling sender is disconnected once its message is overdue.
  slow.send_raw("ORU");
  EXPECT_TRUE(slow.closed_within(5'000));
  EXPECT_TRUE(gateway_->running()) << gateway_log();
}

TEST_F(hl7_gateway_test, adt_admits_transfers_and_discharges_and_the_beds_devices_follow) {
  ASSERT_TRUE(client_->create_device("h1", "mon-2", v1::DEVICE_TYPE_BEDSIDE_MONITOR).ok());
  ASSERT_TRUE(client_->create_device("h1", "pump-2", v1::DEVICE_TYPE_INFUSION_PUMP).ok());
  auto adt = [](const std::string& event, const std::string& id, const std::string& pv1) {
    return "MSH|^~\\&|EPIC|HOSP|HEALTHTWIN|HOSP|20261206101500+0000||ADT^" + event + "^ADT_A01|" + id +
           "|P|2.5\rEVN|" + event + "|20261206101500\rPID|||MRN1001^^^HOSP^MR||Doe^Jane\r" + pv1 + "\r";
  };
  auto device_patient = [&](const std::string& d) {
    return client_->device_twin("tenants/h1/devices/" + d).patient();
  };
  mllp_client c{port_};
  // Admit to ICU 1-1: the patient is created there and mon-1 (assigned to p1
  // before, whose bed it was) now serves her.
  ASSERT_TRUE(c.send(adt("A01", "ADT-1", "PV1||I|ICU^1^1")));
  auto a = read_ack(c.read_frame());
  ASSERT_EQ(a.code, "AA") << a.error;
  EXPECT_EQ(device_patient("mon-1"), "tenants/h1/patients/mrn1001");
  // Resent: nothing changes, AA again.
  ASSERT_TRUE(c.send(adt("A01", "ADT-1", "PV1||I|ICU^1^1")));
  EXPECT_EQ(read_ack(c.read_frame()).code, "AA");
  // Transfer to 1-2: mon-1 freed, mon-2 and pump-2 follow her.
  ASSERT_TRUE(c.send(adt("A02", "ADT-2", "PV1||I|ICU^1^2|||ICU^1^1")));
  a = read_ack(c.read_frame());
  ASSERT_EQ(a.code, "AA") << a.error;
  EXPECT_EQ(device_patient("mon-1"), "");
  EXPECT_EQ(device_patient("mon-2"), "tenants/h1/patients/mrn1001");
  EXPECT_EQ(device_patient("pump-2"), "tenants/h1/patients/mrn1001");
  auto twin = client_->patient_twin("tenants/h1/patients/mrn1001");
  EXPECT_EQ(twin.ward(), "ICU");
  EXPECT_EQ(twin.bed(), "1-2");
  // Readings of the bed's monitor now reach her twin.
  ASSERT_TRUE(c.send(oru("T-1", "mon-2", now_ms() - 30'000, 88, 95)));
  EXPECT_EQ(read_ack(c.read_frame()).code, "AA");
  auto* hr = find_vital(client_->patient_twin("tenants/h1/patients/mrn1001"), v1::METRIC_HEART_RATE);
  ASSERT_NE(hr, nullptr);
  EXPECT_EQ(hr->value(), 88);
  // Discharge: her devices are free again; she stays registered.
  ASSERT_TRUE(c.send(adt("A03", "ADT-3", "PV1||I|ICU^1^2")));
  a = read_ack(c.read_frame());
  ASSERT_EQ(a.code, "AA") << a.error;
  EXPECT_EQ(device_patient("mon-2"), "");
  EXPECT_EQ(device_patient("pump-2"), "");
  // A bad patient id is refused naming PID-3, and nothing changes.
  ASSERT_TRUE(c.send(adt("A01", "ADT-4", "PV1||I|ICU^1^2").replace(
      adt("A01", "ADT-4", "PV1||I|ICU^1^2").find("MRN1001"), 7, "MRN 1001!")));
  a = read_ack(c.read_frame());
  EXPECT_EQ(a.code, "AE");
  EXPECT_NE(a.error.find("PID-3"), std::string::npos) << a.error;
  EXPECT_EQ(device_patient("mon-2"), "");
}
