#include <map>
#include <set>

#include <gtest/gtest.h>

#include "services/hl7/hl7_gateway.hpp"
#include "tests/support/temp_dir.hpp"

using namespace healthtwin;
using namespace healthtwin::hl7;

namespace {

/// A node as the gateway sees it: devices it knows; readings stored by
/// (device, sequence) with duplicates reported DUPLICATE.
struct fake_node {
  std::set<std::string> devices{"tenants/h1/devices/mon-7", "tenants/h1/devices/mon-8"};
  std::map<std::pair<std::string, uint64_t>, double> stored;
  int calls = 0;
  bool down = false;

  grpc::Status ingest(const v1::IngestRequest& req, v1::IngestResponse& resp) {
    ++calls;
    if (down)
      return {grpc::StatusCode::UNAVAILABLE, "node is shutting down"};
    uint32_t index = 0;
    for (auto& d : req.devices())
      for (int i = 0; i < d.sequence_size(); ++i, ++index) {
        auto reject = [&](v1::RejectionReason r) {
          auto* x = resp.add_rejections();
          x->set_index(index);
          x->set_reason(r);
        };
        if (!devices.count(d.device()))
          reject(v1::REJECTION_REASON_UNKNOWN_DEVICE);
        else if (!stored.emplace(std::make_pair(d.device(), d.sequence(i)), d.value(i)).second)
          reject(v1::REJECTION_REASON_DUPLICATE);
        else
          resp.set_accepted(resp.accepted() + 1);
      }
    return grpc::Status::OK;
  }
};

std::string oru(const std::string& control_id, const std::string& device, double hr, const std::string& time = "20261206101500+0000") {
  return "MSH|^~\\&|GW|ICU||HT|" + time + "||ORU^R01^ORU_R01|" + control_id + "|P|2.6\r"
         "PID|||P123^^^Hosp^PI\r"
         "OBR|1||" + control_id + "|182777000^monitoring of patient^SCT|||" + time + "\r"
         "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||" + device + "^EUI-64\r"
         "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|" + std::to_string(hr) + "|/min|||||F\r"
         "OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|%|||||F\r";
}

struct reply {
  std::string code, control_id, err_location, err_text;
};

reply read_ack(const std::string& ack) {
  error why;
  auto m = message::parse(ack, why);
  EXPECT_TRUE(m) << why.what;
  if (!m)
    return {};
  reply r;
  for (auto& s : m->segments()) {
    if (s.id() == "MSA") {
      r.code = m->value(s, 1);
      r.control_id = m->value(s, 2);
    } else if (s.id() == "ERR" && r.err_text.empty()) {
      r.err_location = m->value(s, 2, 1) + "[" + m->value(s, 2, 2) + "]-" + m->value(s, 2, 3);
      r.err_text = m->value(s, 8);
    }
  }
  return r;
}

class hl7_gateway_test : public ::testing::Test {
protected:
  void SetUp() override { open(); }

  void open() {
    gateway_.reset();
    journal_.reset();
    auto j = storage::message_journal::open(dir_.path() / "journal");
    ASSERT_TRUE(j);
    journal_ = std::move(*j);
    gateway_settings s;
    s.tenant = "h1";
    gateway_ = std::make_unique<hl7_gateway>(s, *journal_, [this](auto& req, auto& resp) { return node_.ingest(req, resp); });
  }

  reply send(const std::string& text) { return read_ack(gateway_->handle(text)); }

  healthtwin::testing::temp_dir dir_;
  fake_node node_;
  std::unique_ptr<storage::message_journal> journal_;
  std::unique_ptr<hl7_gateway> gateway_;
};

}  // namespace

TEST_F(hl7_gateway_test, acks_aa_with_the_message_control_id_after_the_node_stored_it) {
  auto r = send(oru("MSG-1", "mon-7", 72));
  EXPECT_EQ(r.code, "AA");
  EXPECT_EQ(r.control_id, "MSG-1");
  EXPECT_EQ(node_.stored.size(), 2u);
}

TEST_F(hl7_gateway_test, a_resend_is_never_stored_twice_even_after_a_gateway_restart) {
  EXPECT_EQ(send(oru("MSG-1", "mon-7", 72)).code, "AA");
  EXPECT_EQ(send(oru("MSG-1", "mon-7", 72)).code, "AA");  // a lost ACK: resent
  EXPECT_EQ(node_.calls, 1);  // known as stored: answered from the journal
  // The ACK was lost because the node's answer never came back: the
  // journal has the numbers but no acknowledgement, and the node has them.
  node_.down = true;
  EXPECT_EQ(send(oru("MSG-2", "mon-7", 73)).code, "AE");
  node_.down = false;
  open();  // the gateway restarts
  EXPECT_EQ(send(oru("MSG-2", "mon-7", 73)).code, "AA");
  EXPECT_EQ(send(oru("MSG-3", "mon-7", 74)).code, "AA");
  EXPECT_EQ(node_.stored.size(), 6u);  // MSG-1, -2, -3: two readings each, once
}

TEST_F(hl7_gateway_test, a_resend_carries_the_same_numbers_so_the_node_reports_duplicates) {
  auto r = journal_->assign(std::string{"GW\0ICU\0MSG-9", 12}, "x", {{"mon-7", 2}}, 1'000);
  ASSERT_TRUE(r);
  // Journal and node agree on the numbers: the node already had them.
  EXPECT_EQ(send(oru("MSG-4", "mon-7", 72)).code, "AA");
  auto before = node_.stored.size();
  EXPECT_EQ(send(oru("MSG-4", "mon-7", 72)).code, "AA");
  EXPECT_EQ(node_.stored.size(), before);
}

TEST_F(hl7_gateway_test, a_control_id_reused_for_other_content_is_refused) {
  EXPECT_EQ(send(oru("MSG-1", "mon-7", 72)).code, "AA");
  auto r = send(oru("MSG-1", "mon-7", 99));
  EXPECT_EQ(r.code, "AE");
  EXPECT_NE(r.err_text.find("already used"), std::string::npos) << r.err_text;
  EXPECT_EQ(node_.stored.size(), 2u);
}

TEST_F(hl7_gateway_test, readings_the_node_refuses_are_named_by_their_obx) {
  auto r = send(oru("MSG-1", "mon-9", 72));  // not registered
  EXPECT_EQ(r.code, "AE");
  EXPECT_EQ(r.err_location, "OBX[2]-5");
  EXPECT_NE(r.err_text.find("not registered"), std::string::npos) << r.err_text;
  node_.devices.insert("tenants/h1/devices/mon-9");  // registered: the resend is taken
  EXPECT_EQ(send(oru("MSG-1", "mon-9", 72)).code, "AA");
}

TEST_F(hl7_gateway_test, unsupported_and_malformed_messages_are_rejected_with_the_reason) {
  auto adt = send("MSH|^~\\&|ADT|H||HT|20261206101500||ADT^A01|A-1|P|2.5\rPID|||1\r");
  EXPECT_EQ(adt.code, "AR");
  EXPECT_EQ(adt.control_id, "A-1");
  EXPECT_NE(adt.err_text.find("MSH-9"), std::string::npos);
  auto version = send("MSH|^~\\&|GW|H||HT|20261206101500||ORU^R01|V-1|P|3.0\r");
  EXPECT_EQ(version.code, "AR");
  EXPECT_NE(version.err_text.find("MSH-12"), std::string::npos);
  auto training = send("MSH|^~\\&|GW|H||HT|20261206101500||ORU^R01|T-1|T|2.6\r");
  EXPECT_EQ(training.code, "AR");
  EXPECT_NE(training.err_text.find("MSH-11"), std::string::npos);
  auto broken = send("MSH|^~\\&|GW|H||HT|20261206101500||ORU^R01|B-1|P|2.6\rOBX|1|NM|x||\\Q\\\r");
  EXPECT_EQ(broken.code, "AR");
  EXPECT_EQ(broken.control_id, "B-1");  // still answers its own message
  auto junk = send("hello");
  EXPECT_EQ(junk.code, "AR");
  EXPECT_EQ(junk.control_id, "");
  auto value = send(oru("MSG-5", "mon-7", 72).replace(oru("MSG-5", "mon-7", 72).find("|72."), 3, "|7x"));
  EXPECT_EQ(value.code, "AE");
  EXPECT_EQ(value.err_location, "OBX[2]-5");
  EXPECT_TRUE(node_.stored.empty());
}

TEST_F(hl7_gateway_test, too_large_answers_the_message_it_can_name) {
  auto r = read_ack(gateway_->too_large(oru("BIG-1", "mon-7", 72).substr(0, 200), 1 << 20));
  EXPECT_EQ(r.code, "AR");
  EXPECT_EQ(r.control_id, "BIG-1");
  EXPECT_NE(r.err_text.find("larger than 1048576 bytes"), std::string::npos);
}

TEST(message_journal, numbers_devices_from_the_clock_then_consecutively_and_forgets_old_messages) {
  healthtwin::testing::temp_dir dir;
  auto j = storage::message_journal::open(dir.path());
  ASSERT_TRUE(j);
  auto a = (*j)->assign("k1", "d1", {{"mon-7", 3}, {"mon-8", 1}}, 5'000);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first_sequence[0], (std::pair<std::string, uint64_t>{"mon-7", 5'000}));
  EXPECT_EQ(a->first_sequence[1], (std::pair<std::string, uint64_t>{"mon-8", 5'000}));
  auto b = (*j)->assign("k2", "d2", {{"mon-7", 1}}, 6'000);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first_sequence[0].second, 5'003u);
  EXPECT_FALSE((*j)->find("k1")->acked);
  EXPECT_FALSE((*j)->mark_acked("k1"));
  EXPECT_TRUE((*j)->find("k1")->acked);
  EXPECT_EQ((*j)->forget_before(5'500), 1u);
  EXPECT_FALSE((*j)->find("k1"));
  EXPECT_TRUE((*j)->find("k2"));
}
