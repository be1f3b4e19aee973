// libFuzzer target: an ingest request as it arrives off the wire, decoded
// and validated as the IngestService does before anything is written.
#include <cstdint>
#include <cstdlib>

#include <google/protobuf/stubs/logging.h>

#include "services/grpc/ingest_validation.hpp"

using namespace healthtwin::services;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 is expected here, not news
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  healthtwin::v1::IngestRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size)))
    return 0;
  ingest_limits limits;
  limits.max_readings = 64;  // small, so that the limit paths are reached too
  constexpr int64_t now = 1'790'000'000'000;
  auto v = validate_ingest(req, now, limits);
  // Every reading is either accepted into a group or rejected, never both.
  if (v.violations.empty()) {
    size_t grouped = 0;
    for (auto& g : v.groups)
      grouped += g.readings.size();
    if (grouped != v.readings || grouped + v.rejections.size() > limits.max_readings)
      std::abort();
  }
  return 0;
}
