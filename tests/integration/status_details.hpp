#pragma once

#include <string>
#include <vector>

#include <grpcpp/support/status.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace healthtwin::testing {

/// The field violations of a status's google.rpc.BadRequest details.
inline std::vector<google::rpc::BadRequest::FieldViolation> field_violations(const grpc::Status& st) {
  std::vector<google::rpc::BadRequest::FieldViolation> out;
  google::rpc::Status details;
  if (!details.ParseFromString(st.error_details()))
    return out;
  for (auto& any : details.details()) {
    google::rpc::BadRequest br;
    if (any.UnpackTo(&br))
      for (auto& v : br.field_violations())
        out.push_back(v);
  }
  return out;
}

/// The fields named by a status's google.rpc.BadRequest details.
inline std::vector<std::string> violated_fields(const grpc::Status& st) {
  std::vector<std::string> out;
  for (auto& v : field_violations(st))
    out.push_back(v.field());
  return out;
}

}  // namespace healthtwin::testing
