#pragma once
// twinctl's commands over the public API of a running node: twins, alerts,
// and any method by name. Exit codes (docs: services/twinctl/README.md):
//   0  done
//   1  the node refused (invalid, not found, denied, conflict)
//   2  a usage error, or the request could not be built
//   3  try again later (unavailable, deadline, rate limit, unreachable)

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <utility>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include "services/grpc/client_channel.hpp"

namespace healthtwin::twinctl {

enum exit_code : int { done = 0, refused = 1, usage = 2, try_later = 3 };

/// A channel to the node; null after saying why on stderr.
std::shared_ptr<grpc::Channel> channel_to(const services::channel_settings& node);

/// A stub of `Service` on the node; null after saying why on stderr.
template <class Service>
std::unique_ptr<typename Service::Stub> stub_to(const services::channel_settings& node) {
  auto channel = channel_to(node);
  return channel ? Service::NewStub(channel) : nullptr;
}

/// A message as JSON (proto3 mapping, defaults included) on stdout.
void print_json(const google::protobuf::Message& m, bool one_line = false);

/// An enum value's name without its type's prefix: PRIORITY_HIGH -> HIGH.
std::string short_name(const google::protobuf::EnumDescriptor* d, int v);

/// How the commands print: tables for people, or JSON (proto3 mapping).
struct output {
  bool json = false;
};

/// `twinctl call Service/Method --data JSON`: any unary method of
/// healthtwin.v1, the request and the answer in JSON.
int call_method(const services::channel_settings& node, const std::string& method, const std::string& data);

/// `twinctl twins get NAME`: a patient's or device's twin.
int get_twin(const services::channel_settings& node, const std::string& name, output out);

/// `twinctl twins list --tenant T [--filter F] [--order-by O]`: every page.
int list_twins(const services::channel_settings& node, const std::string& tenant, const std::string& filter,
               const std::string& order_by, output out);

/// `twinctl twins watch NAME [--count N]`: each change of a patient's twin
/// as a line, until N changes (0: until interrupted or the node ends it).
int watch_twin(const services::channel_settings& node, const std::string& name, int count, output out);

/// `twinctl alerts list --tenant T [--ward W] [--patient P] [--include-resolved]`.
int list_alerts(const services::channel_settings& node, const std::string& tenant, const std::string& ward,
                const std::string& patient, bool include_resolved, output out);

/// `twinctl alerts ack|resolve NAME [--note N]`.
int act_on_alert(const services::channel_settings& node, const std::string& action, const std::string& name,
                 const std::string& note, output out);

/// `twinctl alerts silence --patient P --minutes M [--metric METRIC] [--reason R]`.
int silence_alerts(const services::channel_settings& node, const std::string& patient, int minutes,
                   const std::string& metric, const std::string& reason, output out);

/// `twinctl fhir export NAME [--hours H]`: the patient as a FHIR R4 Bundle
/// (JSON on stdout) with the vital signs of the last H hours.
int export_fhir(const services::channel_settings& node, const std::string& name, double hours);

/// The exit code of a failed call, after printing why on stderr.
int failed(const char* what, const grpc::Status& st);

/// "tenants/T/{kind}/ID" split into its parent and id; nullopt after saying why.
std::optional<std::pair<std::string, std::string>> split_name(const std::string& name, const char* kind);

/// One unary call (`what` names it in the message of a failure), with a
/// 30 s deadline: done, or the exit code after saying why.
template <class Stub, class Req, class Resp>
int unary(const services::channel_settings& node, const char* what,
          grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*), const Req& req, Resp& resp) {
  auto channel = channel_to(node);
  if (!channel)
    return try_later;
  Stub stub{channel};
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto st = (stub.*method)(&ctx, req, &resp);
  return st.ok() ? done : failed(what, st);
}

}  // namespace healthtwin::twinctl
