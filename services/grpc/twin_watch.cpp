// TwinService's two server streams: a twin now, then each change (polled
// every min_interval, sent when it differs), relayed from the owner in a
// cluster.

#include <thread>

#include <google/protobuf/util/message_differencer.h>

#include "services/grpc/twin_reads.hpp"

namespace healthtwin::services {

namespace {

using google::protobuf::FieldMask;
using grpc::ServerContext;
using grpc::Status;

// The frame of a twin watch: its opening on record, then read(twin) every
// interval, sent (trimmed by the mask) when it changed, until the caller
// cancels (CANCELLED), the node stops (CANCELLED) or the deadline (OK).
template <class Twin, class Read>
Status watch(service_env& env, ServerContext* call, const rpc_call& rc,
             grpc::ServerWriter<Twin>* writer, std::chrono::milliseconds interval,
             const FieldMask& mask, Read read) {
  if (auto st = env.audit_stream_opened(call, rc); !st.ok())
    return st;
  std::optional<Twin> last;
  for (;;) {
    Twin twin;
    if (auto st = read(&twin); !st.ok())
      return st;
    apply_read_mask(mask, &twin);
    if (!last || !google::protobuf::util::MessageDifferencer::Equals(*last, twin)) {
      if (!writer->Write(twin))
        return Status::OK;  // the caller went away
      last = std::move(twin);
    }
    auto next = std::chrono::system_clock::now() + interval;
    while (std::chrono::system_clock::now() < next) {
      if (call->IsCancelled() || env.stopping)
        return Status(grpc::StatusCode::CANCELLED, "the watch ended");
      if (call->deadline() <= std::chrono::system_clock::now())
        return Status::OK;  // watched until the caller's deadline
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

}  // namespace

grpc::Status watch_patient_twin(service_env& env, ServerContext* call,
                                const v1::WatchPatientTwinRequest& req,
                                grpc::ServerWriter<v1::PatientTwin>* writer) {
  return env.serve(call, "TwinService/WatchPatientTwin", [&](rpc_call& rc) -> Status {
    std::vector<field_violation> bad;
    auto interval = check_watch<v1::PatientTwin>(req, bad);
    if (!interval)
      return invalid_argument(bad);
    if (env.owned_elsewhere(req.name())) {  // relayed from its owner
      if (auto st = allow_patient(rc, req.name(), "name"); !st.ok())
        return st;
      if (auto st = env.audit_stream_opened(call, rc); !st.ok())
        return st;
      return *env.relay(call, req.name(), writer, [&](owner_stubs& s, grpc::ClientContext& c) {
        return s.twins->WatchPatientTwin(&c, req);
      });
    }
    if (auto st = check_patient(env, rc, req.name(), "name"); !st.ok())
      return st;
    return watch(env, call, rc, writer, *interval, req.read_mask(), [&](v1::PatientTwin* twin) {
      return read_patient_twin(env, call, req.name(), twin);
    });
  });
}

grpc::Status watch_device_twin(service_env& env, ServerContext* call,
                               const v1::WatchDeviceTwinRequest& req,
                               grpc::ServerWriter<v1::DeviceTwin>* writer) {
  return env.serve(call, "TwinService/WatchDeviceTwin", [&](rpc_call& rc) -> Status {
    std::vector<field_violation> bad;
    auto interval = check_watch<v1::DeviceTwin>(req, bad);
    if (!interval)
      return invalid_argument(bad);
    if (env.owned_elsewhere(req.name())) {  // relayed from its owner
      if (auto st = allow_device(rc, req.name(), "name"); !st.ok())
        return st;
      if (auto st = env.audit_stream_opened(call, rc); !st.ok())
        return st;
      return *env.relay(call, req.name(), writer, [&](owner_stubs& s, grpc::ClientContext& c) {
        return s.twins->WatchDeviceTwin(&c, req);
      });
    }
    storage::device_record rec;
    if (auto st = find_device(env, rc, req.name(), "name", rec); !st.ok())
      return st;
    return watch(env, call, rc, writer, *interval, req.read_mask(), [&](v1::DeviceTwin* twin) {
      // The registry part (shadow, assignment) can change too.
      auto now = storage::registry{*env.ctx.store}.get_device(req.name());
      if (!now)
        return to_status(now.error());
      if (!*now)
        return Status(grpc::StatusCode::NOT_FOUND, "device not found");
      return read_device_twin(env, call, **now, twin);
    });
  });
}

}  // namespace healthtwin::services
