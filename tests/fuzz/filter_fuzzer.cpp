// libFuzzer target: the twin filter and order_by parsers (ListPatientTwins
// takes both from any caller). The first byte picks the parser; a filter
// that parses is evaluated against a few summaries, so evaluation is
// fuzzed too.
#include <cstdint>
#include <string_view>

#include "actors/index/twin_query.hpp"

using namespace healthtwin::actors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view text{reinterpret_cast<const char*>(data) + 1, size - 1};
  std::string error;
  if (data[0] % 2 == 0) {
    auto filter = twin_filter::parse(text, error);
    if (!filter)
      return 0;
    patient_summary s;
    s.ward = "ICU-3";
    (void)filter->matches("tenants/h1/patients/p1", s);
    s.news2_known = true;
    s.news2 = 7;
    s.news2_band = healthtwin::models::news2_band::high;
    s.alert_priority = healthtwin::models::priority::high;
    s.open_alerts = 2;
    (void)filter->matches("tenants/h1/patients/p2", s);
  } else {
    auto order = twin_order::parse(text, error);
    if (!order)
      return 0;
    std::pair<std::string, patient_summary> a{"tenants/h1/patients/a", {}}, b{"tenants/h1/patients/b", {}};
    b.second.news2_known = true;
    (void)order->before(a, b);
    (void)order->before(b, a);
  }
  return 0;
}
