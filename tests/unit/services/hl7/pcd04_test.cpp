#include "services/hl7/pcd04.hpp"

#include <gtest/gtest.h>

#include "services/hl7/hl7_message.hpp"

using namespace healthtwin;
using namespace healthtwin::hl7;

namespace {

v1::AlertEvent event(v1::AlertEventType type) {
  v1::AlertEvent e;
  e.set_resume_token(42);
  e.set_type(type);
  auto* a = e.mutable_alert();
  a->set_name("tenants/h1/patients/mrn-9/alerts/7");
  a->set_patient("tenants/h1/patients/mrn-9");
  a->set_ward("ICU|2");  // a delimiter in a value is escaped
  a->set_kind(v1::ALERT_KIND_THRESHOLD);
  a->set_metric(v1::METRIC_HEART_RATE);
  a->set_priority(v1::PRIORITY_MEDIUM);
  a->set_state(v1::ALERT_STATE_ACTIVE);
  a->set_value(131);
  a->set_message("heart_rate high: 131 /min ^ rising");
  a->set_raise_time_ms(1'800'000'000'123);
  a->set_device("tenants/h1/devices/mon-1");
  e.mutable_event_time()->set_seconds(1'800'000'001);
  return e;
}

const segment* find(const message& m, std::string_view id, int occurrence = 1) {
  for (auto& s : m.segments())
    if (s.id() == id && s.occurrence() == occurrence)
      return &s;
  return nullptr;
}

}  // namespace

TEST(pcd04, an_alert_event_is_an_oru_r40_with_its_identity_priority_phase_and_state) {
  auto text = report_alert(event(v1::ALERT_EVENT_TYPE_RAISED), {"ICU-GW", "NURSECALL", "HOSP", "P"}, 1'800'000'002'000);
  error why;
  auto m = message::parse(text, why);
  ASSERT_TRUE(m) << why.what;
  EXPECT_EQ(m->value(m->msh(), 9), "ORU^R40^ORU_R40");
  EXPECT_EQ(m->value(m->msh(), 10), pcd04_control_id(42));
  EXPECT_EQ(m->value(m->msh(), 5), "NURSECALL");
  EXPECT_EQ(m->value(m->msh(), 7), "20270115080002.000+0000");
  EXPECT_EQ(m->value(*find(*m, "PID"), 3, 1), "mrn-9");
  EXPECT_EQ(m->value(*find(*m, "PID"), 3, 4), "h1");
  EXPECT_EQ(m->value(*find(*m, "PV1"), 3), "ICU|2");
  EXPECT_EQ(m->value(*find(*m, "OBR"), 2, 1), "7");
  EXPECT_EQ(m->value(*find(*m, "OBR"), 4), "196616^MDC_EVT_ALARM^MDC");
  auto* facet1 = find(*m, "OBX", 1);
  EXPECT_EQ(m->value(*facet1, 4), "1.0.0.0.1");
  EXPECT_EQ(m->value(*facet1, 5), "heart_rate high: 131 /min ^ rising");
  EXPECT_EQ(std::string{facet1->raw(8)}, "PM~SP");
  EXPECT_EQ(m->value(*facet1, 18), "mon-1");
  EXPECT_EQ(m->value(*find(*m, "OBX", 2), 3, 1), "147842");
  EXPECT_EQ(m->value(*find(*m, "OBX", 2), 5), "131");
  EXPECT_EQ(m->value(*find(*m, "OBX", 3), 5), "start");
  EXPECT_EQ(m->value(*find(*m, "OBX", 4), 5), "active");
  EXPECT_EQ(m->value(*find(*m, "OBX", 5), 5), "enabled");
}

TEST(pcd04, acknowledgement_silence_and_resolution_change_the_phase_and_states) {
  auto ack = event(v1::ALERT_EVENT_TYPE_ACKNOWLEDGED);
  ack.mutable_alert()->set_state(v1::ALERT_STATE_ACKNOWLEDGED);
  ack.mutable_alert()->mutable_acknowledge_time()->set_seconds(1'800'000'010);
  auto resolved = ack;
  resolved.set_type(v1::ALERT_EVENT_TYPE_RESOLVED);
  resolved.mutable_alert()->set_state(v1::ALERT_STATE_RESOLVED);
  auto silenced = event(v1::ALERT_EVENT_TYPE_SILENCED);
  silenced.mutable_alert()->mutable_silenced_until()->set_seconds(1'800'000'600);
  auto device = event(v1::ALERT_EVENT_TYPE_RAISED);
  device.mutable_alert()->set_kind(v1::ALERT_KIND_DEVICE_OFFLINE);
  device.mutable_alert()->set_metric(v1::METRIC_UNSPECIFIED);
  device.mutable_alert()->set_priority(v1::PRIORITY_LOW);
  auto facets = [](const v1::AlertEvent& e) {
    error why;
    auto m = message::parse(report_alert(e, {}, 1), why);
    std::vector<std::string> out;
    for (auto& s : m->segments())
      if (s.id() == "OBX")
        out.push_back(std::string{s.raw(4)} + "=" + (std::string{s.raw(4)} == "1.0.0.0.1" ? std::string{s.raw(8)}
                                                                                         : std::string{s.raw(5)}));
    return out;
  };
  EXPECT_EQ(facets(ack), (std::vector<std::string>{"1.0.0.0.1=PM~SP", "1.0.0.0.2=131", "1.0.0.0.3=continue",
                                                    "1.0.0.0.4=active", "1.0.0.0.5=acknowledged"}));
  EXPECT_EQ(facets(resolved), (std::vector<std::string>{"1.0.0.0.1=PM~SP", "1.0.0.0.2=131", "1.0.0.0.3=end",
                                                         "1.0.0.0.4=inactive", "1.0.0.0.5=acknowledged"}));
  EXPECT_EQ(facets(silenced).back(), "1.0.0.0.5=audio-paused");
  EXPECT_EQ(facets(device), (std::vector<std::string>{"1.0.0.0.1=PL~ST", "1.0.0.0.3=start", "1.0.0.0.4=active",
                                                       "1.0.0.0.5=enabled"}));  // no measurement facet
}
