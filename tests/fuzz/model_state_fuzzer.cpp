// libFuzzer target: the patient model's snapshot state (twin snapshots on
// disk, and the hand-off stream between members). Whatever the bytes: no
// crash and no undefined behaviour; bytes taken read back as the same state
// (encode after decode is a fixed point); a refused input leaves the model
// as it was; a restored model takes readings.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "actors/models/patient_model.hpp"

using namespace healthtwin::models;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes{reinterpret_cast<const char*>(data), size};
  patient_model m;
  auto before = m.encode();
  if (!m.decode(bytes)) {
    if (m.encode() != before)
      std::abort();  // a refused snapshot changed the model
    return 0;
  }
  auto once = m.encode();
  patient_model again;
  if (!again.decode(once) || again.encode() != once)
    std::abort();  // what it writes, it must read back as written
  std::vector<finding> out;
  int64_t t = 1'700'000'000'000;  // a time of today's; stored times may be anything
  for (uint8_t n = 1; n <= metric_count; ++n)
    m.apply_frame(t, {{static_cast<metric>(n), 42.0, reading_quality::valid, "fuzz"},
                      {metric::heart_rate, 0, reading_quality::no_signal, "fuzz"}},
                  out);
  return 0;
}
