// libFuzzer target: the field rules every RPC applies to masks and the
// quoting of what a client sent (issue 19): lines of the input are the
// paths of a read mask and of an update mask. Whatever they hold, every
// violation names its field and stays short, without control characters.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "actors/models/quoted.hpp"
#include "healthtwin/v1/twin.pb.h"
#include "services/grpc/field_rules.hpp"

using namespace healthtwin::services;

namespace {

void check(const std::vector<field_violation>& bad) {
  for (auto& v : bad) {
    if (v.field.empty() || v.field.size() > 64 || v.description.size() > 256)
      std::abort();
    for (char c : v.description)
      if (static_cast<unsigned char>(c) < 0x20)
        std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  google::protobuf::FieldMask mask;
  for (size_t at = 0; at <= input.size() && mask.paths_size() < 80;) {
    auto end = input.find('\n', at);
    if (end == std::string::npos)
      end = input.size();
    mask.add_paths(input.substr(at, end - at));
    at = end + 1;
  }
  check(check_mask(mask, "read_mask", healthtwin::v1::PatientTwin::descriptor()));
  check(check_mask(mask, "update_mask", nullptr, {"ward", "bed", "home_region", "spo2_scale2"}, true));
  if (check_region(input, "patient.home_region") && input.size() <= 63 &&
      std::all_of(input.begin(), input.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }))
    std::abort();  // a plain identifier is a region
  auto q = healthtwin::models::quoted_input(input);
  if (q.size() > healthtwin::models::max_quoted_bytes + 32)
    std::abort();
  return 0;
}
