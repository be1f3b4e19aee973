#pragma once

#include <memory>

namespace grpc::experimental {
class ServerInterceptorFactoryInterface;
}

namespace prometheus {
class Registry;
}

namespace healthtwin::services {

/// Per-method gRPC server metrics, by Prometheus conventions (the labels
/// name the service, the method and the status code; never a resource):
///   healthtwin_grpc_server_started_total{grpc_service,grpc_method,grpc_type}
///   healthtwin_grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}
///   healthtwin_grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}
/// (for a stream, its lifetime). An interceptor sees every call the server
/// dispatched, whatever answered it; calls the transport refused before a
/// handler (a message or metadata over the limit) are not among them.
/// Register the factory on the ServerBuilder before BuildAndStart; the
/// registry must outlive the server. Thread-safe.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> make_grpc_probe(
    prometheus::Registry& metrics);

}  // namespace healthtwin::services
