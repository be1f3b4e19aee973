#include "services/http/json_gateway.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "google/rpc/status.pb.h"
#include "healthtwin/v1/alert.pb.h"
#include "healthtwin/v1/clinical.pb.h"
#include "healthtwin/v1/cluster.pb.h"
#include "healthtwin/v1/fhir.pb.h"
#include "healthtwin/v1/ingest.pb.h"
#include "healthtwin/v1/registry.pb.h"
#include "healthtwin/v1/rollout.pb.h"
#include "healthtwin/v1/twin.pb.h"

namespace healthtwin::services {

namespace {

namespace pb = google::protobuf;
namespace v1 = healthtwin::v1;

constexpr std::string_view api_prefix = "/api/v1/";
constexpr std::string_view api_package = "healthtwin.v1.";
/// At most this much of what a caller sent is quoted back in an error.
constexpr size_t quoted_prefix = 64;

std::string bounded(std::string_view s, size_t n = quoted_prefix) {
  return s.size() <= n ? std::string{s} : std::string{s.substr(0, n)} + "...";
}

/// The HTTP status of a gRPC code (as Google's API gateways map them).
unsigned http_status_of(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::CANCELLED: return 499;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED: return 409;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    default: return 500;
  }
}

const char* code_name(grpc::StatusCode c) {
  static constexpr const char* names[] = {
      "OK",        "CANCELLED",         "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",      "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  auto i = static_cast<size_t>(c);
  return i < std::size(names) ? names[i] : "UNKNOWN";
}

pb::util::JsonPrintOptions print_options() {
  pb::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;  // a score of 0 is shown, not left out
  return o;
}

/// {"status", "code", "message", "details"} of a gRPC status; details are
/// the google.rpc messages the API attached (field violations, retry info).
std::string error_json(const grpc::Status& st) {
  google::rpc::Status body;
  if (!st.error_details().empty())
    body.ParseFromString(st.error_details());  // empty on garbage: the code and message stay
  body.set_code(static_cast<int>(st.error_code()));
  body.set_message(st.error_message());
  std::string json;
  if (!pb::util::MessageToJsonString(body, &json, print_options()).ok()) {
    body.clear_details();
    json.clear();
    (void)pb::util::MessageToJsonString(body, &json, print_options());
  }
  return "{\"status\":\"" + std::string{code_name(st.error_code())} + "\"," + json.substr(1);
}

http_response error_response(const grpc::Status& st) {
  return {http_status_of(st.error_code()), "application/json", error_json(st) + "\n"};
}

http_response refuse(grpc::StatusCode code, std::string message) {
  return error_response(grpc::Status(code, std::move(message)));
}

grpc::ByteBuffer to_buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

/// The message of type `type` in `buf`, as JSON; false if it does not parse.
bool to_json(const grpc::ByteBuffer& buf, const pb::Descriptor* type, std::string& json) {
  std::vector<grpc::Slice> slices;
  if (!buf.Dump(&slices).ok())
    return false;
  std::string bytes;
  for (auto& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<pb::Message> msg{pb::MessageFactory::generated_factory()->GetPrototype(type)->New()};
  return msg->ParseFromString(bytes) && pb::util::MessageToJsonString(*msg, &json, print_options()).ok();
}

bool is_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}

}  // namespace

/// One call through the gateway; it drops its responder when destroyed.
struct gateway_call : std::enable_shared_from_this<gateway_call> {
  gateway_call(std::shared_ptr<json_gateway::impl> gw, std::shared_ptr<http_responder> out, bool stream);
  virtual ~gateway_call();

  std::shared_ptr<json_gateway::impl> gw;
  std::shared_ptr<http_responder> out;
  const bool stream;
  grpc::ClientContext ctx;
  grpc::ByteBuffer request;
  const pb::Descriptor* reply_type = nullptr;

  // Event streams: whether the answer is open, and writes to it in order.
  std::mutex write_mtx;
  bool opened = false;

  /// An event stream's next event (or comment); cancels the call when the
  /// client is gone.
  void send_event(const std::string& text) {
    std::lock_guard<std::mutex> guard{write_mtx};
    if (opened && !out->write(text))
      ctx.TryCancel();
  }
};

struct json_gateway::impl {
  json_gateway_settings settings;
  std::mutex mtx;
  std::condition_variable changed;
  std::shared_ptr<grpc::GenericStub> stub;
  std::set<std::shared_ptr<gateway_call>> live;  // calls in flight
  size_t alive = 0;                              // call objects not yet destroyed
  size_t streams = 0;
  bool stopping = false;
  std::thread keepalive;

  // Admits a call: null (and the answer sent) when stopping, detached or full.
  std::shared_ptr<grpc::GenericStub> admit(const std::shared_ptr<gateway_call>& call) {
    std::lock_guard<std::mutex> guard{mtx};
    if (stopping || !stub) {
      call->out->reply(refuse(grpc::StatusCode::UNAVAILABLE, stopping ? "the node is stopping"
                                                                        : "the node is starting"));
      return nullptr;
    }
    if (live.size() >= settings.max_calls || (call->stream && streams >= settings.max_streams)) {
      call->out->reply(refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              call->stream ? "too many event streams open on this node"
                                           : "too many calls in flight on this node"));
      return nullptr;
    }
    live.insert(call);
    streams += call->stream;
    return stub;
  }

  void finished(const std::shared_ptr<gateway_call>& call) {
    std::lock_guard<std::mutex> guard{mtx};
    if (live.erase(call))
      streams -= call->stream;
  }

  void run_keepalive() {
    std::unique_lock<std::mutex> lock{mtx};
    while (!stopping) {
      changed.wait_for(lock, settings.keepalive);
      if (stopping)
        break;
      std::vector<std::shared_ptr<gateway_call>> open;
      for (auto& c : live)
        if (c->stream)
          open.push_back(c);
      lock.unlock();
      for (auto& c : open)
        c->send_event(": keep-alive\n\n");
      open.clear();
      lock.lock();
    }
  }
};

gateway_call::gateway_call(std::shared_ptr<json_gateway::impl> g, std::shared_ptr<http_responder> o, bool s)
    : gw(std::move(g)), out(std::move(o)), stream(s) {
  std::lock_guard<std::mutex> guard{gw->mtx};
  ++gw->alive;
}

gateway_call::~gateway_call() {
  out.reset();  // before stop() may return
  std::lock_guard<std::mutex> guard{gw->mtx};
  --gw->alive;
  gw->changed.notify_all();
}

namespace {

void start_unary(std::shared_ptr<gateway_call> call, grpc::GenericStub& stub, const std::string& method) {
  call->ctx.set_deadline(std::chrono::system_clock::now() + call->gw->settings.call_timeout);
  auto reply = std::make_shared<grpc::ByteBuffer>();
  stub.UnaryCall(&call->ctx, method, {}, &call->request, reply.get(), [call, reply](grpc::Status st) {
    if (!st.ok()) {
      call->out->reply(error_response(st));
    } else if (std::string json; to_json(*reply, call->reply_type, json)) {
      call->out->reply({200, "application/json", json + "\n"});
    } else {
      call->out->reply(refuse(grpc::StatusCode::INTERNAL, "the answer could not be converted to JSON"));
    }
    call->gw->finished(call);
  });
}

/// A server-streaming call answered as server-sent events. Owns itself
/// until gRPC is done with it.
class event_stream final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
public:
  explicit event_stream(std::shared_ptr<gateway_call> call) : call_(std::move(call)) {}

  void start(grpc::GenericStub& stub, const std::string& method) {
    stub.PrepareBidiStreamingCall(&call_->ctx, method, {}, this);
    StartWriteLast(&call_->request, grpc::WriteOptions{});
    StartRead(&incoming_);
    StartCall();
  }

  // A stream that marks itself open (StreamAlerts, once subscribed) is
  // answered at once; others at their first message. A call refused at
  // once sends its headers with its status, unmarked: it is answered with
  // the status's HTTP code instead.
  void OnReadInitialMetadataDone(bool ok) override {
    auto& headers = call_->ctx.GetServerInitialMetadata();
    if (auto mark = headers.find("healthtwin-stream"); ok && mark != headers.end() && mark->second == "open")
      open();
  }

  void OnReadDone(bool ok) override {
    if (!ok)
      return;  // OnDone follows
    open();
    std::string json;
    if (!to_json(incoming_, call_->reply_type, json)) {
      call_->ctx.TryCancel();
      return;
    }
    call_->send_event("data: " + json + "\n\n");
    StartRead(&incoming_);
  }

  void OnDone(const grpc::Status& st) override {
    {
      std::lock_guard<std::mutex> guard{call_->write_mtx};
      if (!call_->opened) {
        call_->out->reply(error_response(st.ok() ? grpc::Status(grpc::StatusCode::UNKNOWN, "the stream ended at once")
                                                 : st));
      } else {
        if (!st.ok())
          (void)call_->out->write("event: error\ndata: " + error_json(st) + "\n\n");
        call_->out->close();
      }
    }
    call_->gw->finished(call_);
    delete this;
  }

private:
  void open() {
    std::lock_guard<std::mutex> guard{call_->write_mtx};
    if (call_->opened)
      return;
    call_->opened = true;
    call_->out->open_stream("text/event-stream; charset=utf-8",
                            [weak = std::weak_ptr<gateway_call>(call_)] {
                              if (auto c = weak.lock())
                                c->ctx.TryCancel();
                            });
  }

  std::shared_ptr<gateway_call> call_;
  grpc::ByteBuffer incoming_;
};

}  // namespace

json_gateway::json_gateway(json_gateway_settings settings) : impl_(std::make_shared<impl>()) {
  // The API's descriptors register when their files are linked: name one
  // message of each so that they are, whoever links the gateway.
  for (auto* d : {v1::IngestRequest::descriptor(), v1::CreatePatientRequest::descriptor(),
                  v1::GetPatientTwinRequest::descriptor(), v1::AcknowledgeAlertRequest::descriptor(),
                  v1::GetPatientSettingsRequest::descriptor(), v1::GetNodeStatusRequest::descriptor(),
                  v1::ExportPatientRequest::descriptor(), v1::CreateRolloutRequest::descriptor()})
    (void)d;
  impl_->settings = settings;
  impl_->keepalive = std::thread([im = impl_.get()] { im->run_keepalive(); });
}

json_gateway::~json_gateway() {
  stop();
}

void json_gateway::attach(std::shared_ptr<grpc::Channel> channel) {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->stub = std::make_shared<grpc::GenericStub>(std::move(channel));
}

void json_gateway::stop() {
  std::vector<std::shared_ptr<gateway_call>> calls;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopping = true;
    calls.assign(impl_->live.begin(), impl_->live.end());
  }
  impl_->changed.notify_all();
  for (auto& c : calls)
    c->ctx.TryCancel();
  calls.clear();
  if (impl_->keepalive.joinable())
    impl_->keepalive.join();
  std::unique_lock<std::mutex> lock{impl_->mtx};
  impl_->changed.wait(lock, [&] { return impl_->alive == 0; });
  impl_->stub.reset();
}

void json_gateway::handle(http_request req, std::shared_ptr<http_responder> out) {
  auto path = std::string_view{req.target}.substr(0, req.target.find('?'));
  path.remove_prefix(std::min(path.size(), api_prefix.size()));
  auto slash = path.find('/');
  auto service = path.substr(0, slash);
  auto method_name = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
  if (!is_name(service) || !is_name(method_name))
    return out->reply(refuse(grpc::StatusCode::NOT_FOUND,
                             "no such method: the path is /api/v1/{Service}/{Method}, not " + bounded(req.target)));
  auto* svc = pb::DescriptorPool::generated_pool()->FindServiceByName(std::string{api_package} + std::string{service});
  auto* method = svc ? svc->FindMethodByName(std::string{method_name}) : nullptr;
  if (!method)
    return out->reply(refuse(grpc::StatusCode::NOT_FOUND, "no such method: " + bounded(path)));
  if (req.method != "POST") {
    auto r = refuse(grpc::StatusCode::UNIMPLEMENTED, "call API methods with POST");
    r.status = 405;
    r.headers.emplace_back("Allow", "POST");
    return out->reply(std::move(r));
  }
  if (method->client_streaming())
    return out->reply(refuse(grpc::StatusCode::UNIMPLEMENTED, std::string{method->name()} +
                                                                  " streams requests: use gRPC, or its unary form"));
  auto type = req.header("content-type");
  if (type.substr(0, type.find(';')) != "application/json")
    return out->reply(http_response{415, "application/json",
                                    error_json(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                                            "Content-Type: the body must be application/json")) +
                                        "\n"});
  std::unique_ptr<pb::Message> msg{
      pb::MessageFactory::generated_factory()->GetPrototype(method->input_type())->New()};
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (auto st = pb::util::JsonStringToMessage(req.body.empty() ? "{}" : req.body, msg.get(), options); !st.ok())
    return out->reply(refuse(grpc::StatusCode::INVALID_ARGUMENT,
                             "body: not a " + std::string{method->input_type()->name()} + " in JSON: " +
                                 bounded(std::string{st.message()}, 200)));
  auto call = std::make_shared<gateway_call>(impl_, std::move(out), method->server_streaming());
  call->reply_type = method->output_type();
  call->request = to_buffer(msg->SerializeAsString());
  if (auto token = req.header("authorization"); !token.empty())
    call->ctx.AddMetadata("authorization", std::string{token});
  auto stub = impl_->admit(call);
  if (!stub)
    return;
  auto full_name = "/" + std::string{svc->full_name()} + "/" + std::string{method->name()};
  if (call->stream)
    (new event_stream(call))->start(*stub, full_name);
  else
    start_unary(std::move(call), *stub, full_name);
}

}  // namespace healthtwin::services
