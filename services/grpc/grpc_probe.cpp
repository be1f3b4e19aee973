#include "services/grpc/grpc_probe.hpp"

#include <array>
#include <atomic>
#include <map>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

const char* type_name(ServerRpcInfo::Type t) {
  switch (t) {
    case ServerRpcInfo::Type::UNARY: return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING: return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING: return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unary";
}

/// The instruments of one method, made on its first call and kept: a call
/// then costs a shared lock and a hash lookup, not a family lookup.
struct method_instruments {
  prometheus::Counter* started = nullptr;
  prometheus::Histogram* seconds = nullptr;
  std::array<std::atomic<prometheus::Counter*>, 17> handled{};  // by grpc::StatusCode
};

class grpc_metrics {
public:
  explicit grpc_metrics(prometheus::Registry& reg)
      : started_(prometheus::BuildCounter()
                     .Name("healthtwin_grpc_server_started_total")
                     .Help("gRPC calls started, by method")
                     .Register(reg)),
        handled_(prometheus::BuildCounter()
                     .Name("healthtwin_grpc_server_handled_total")
                     .Help("gRPC calls completed, by method and status code")
                     .Register(reg)),
        seconds_(prometheus::BuildHistogram()
                     .Name("healthtwin_grpc_server_handling_seconds")
                     .Help("Time from a call's start to its status (a stream's lifetime), by method")
                     .Register(reg)) {}

  method_instruments& of(const char* method, ServerRpcInfo::Type type) {
    std::string key{method ? method : "/unknown/unknown"};
    {
      std::shared_lock lock{mtx_};
      if (auto i = methods_.find(key); i != methods_.end())
        return i->second;
    }
    std::unique_lock lock{mtx_};
    auto [i, added] = methods_.try_emplace(key);
    if (!added)
      return i->second;
    // "/package.Service/Method"
    auto slash = key.rfind('/');
    labels_[key] = {{"grpc_service", key.substr(1, slash - 1)},
                    {"grpc_method", key.substr(slash + 1)},
                    {"grpc_type", type_name(type)}};
    auto& labels = labels_[key];
    i->second.started = &started_.Add(labels);
    i->second.seconds = &seconds_.Add(labels, prometheus::Histogram::BucketBoundaries{
                                                  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    return i->second;
  }

  prometheus::Counter& handled(const char* method, method_instruments& m, grpc::StatusCode code) {
    auto c = static_cast<size_t>(code) < m.handled.size() ? static_cast<size_t>(code) : 2;  // UNKNOWN
    if (auto* counter = m.handled[c].load(std::memory_order_acquire))
      return *counter;
    std::unique_lock lock{mtx_};
    if (!m.handled[c].load(std::memory_order_relaxed)) {
      auto labels = labels_[method ? method : "/unknown/unknown"];
      labels["grpc_code"] = code_name(static_cast<grpc::StatusCode>(c));
      m.handled[c].store(&handled_.Add(labels), std::memory_order_release);
    }
    return *m.handled[c].load(std::memory_order_relaxed);
  }

private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  std::shared_mutex mtx_;
  std::unordered_map<std::string, method_instruments> methods_;
  std::unordered_map<std::string, std::map<std::string, std::string>> labels_;
};

class call_probe final : public grpc::experimental::Interceptor {
public:
  call_probe(grpc_metrics& metrics, ServerRpcInfo* info)
      : metrics_(metrics), method_(info->method()), m_(metrics.of(method_, info->type())),
        start_(std::chrono::steady_clock::now()) {
    m_.started->Increment();
  }

  ~call_probe() override {
    if (!done_)  // ended without a status of ours (the client went away)
      finish(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS))
      finish(methods->GetSendStatus().error_code());
    methods->Proceed();
  }

private:
  void finish(grpc::StatusCode code) {
    done_ = true;
    metrics_.handled(method_, m_, code).Increment();
    m_.seconds->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

  grpc_metrics& metrics_;
  const char* method_;
  method_instruments& m_;
  std::chrono::steady_clock::time_point start_;
  bool done_ = false;
};

class probe_factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
public:
  explicit probe_factory(prometheus::Registry& reg) : metrics_(reg) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new call_probe(metrics_, info);  // owned by gRPC's call
  }

private:
  grpc_metrics metrics_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> make_grpc_probe(
    prometheus::Registry& metrics) {
  return std::make_unique<probe_factory>(metrics);
}

}  // namespace healthtwin::services
