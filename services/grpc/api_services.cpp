#include "services/grpc/api_services.hpp"

#include <thread>

#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/registry.hpp"

namespace healthtwin::services {

bool valid_label(std::string_view s, size_t max, bool optional) {
  if (s.size() > max || (!optional && s.empty()))
    return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

grpc::Status check_patient(service_env& env, const std::string& name, const char* field) {
  auto parsed = models::parse_twin_name(name);
  if (!parsed || parsed->kind != models::twin_kind::patient)
    return invalid_argument(field, "must be tenants/{tenant}/patients/{patient}");
  auto rec = storage::registry{*env.ctx.store}.get_patient(name);
  if (!rec)
    return to_status(rec.error());
  if (!*rec)
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "patient not found");
  return grpc::Status::OK;
}

struct api_services::impl {
  service_env env;
  std::vector<std::unique_ptr<grpc::Service>> services;
};

api_services::api_services(api_settings settings, api_context context)
    : impl_(std::make_unique<impl>()) {
  impl_->env.settings = std::move(settings);
  impl_->env.ctx = std::move(context);
  auto& env = impl_->env;
  impl_->services.push_back(make_registry_service(env));
  impl_->services.push_back(make_ingest_service(env));
  impl_->services.push_back(make_twin_service(env));
  impl_->services.push_back(make_alert_service(env));
  impl_->services.push_back(make_clinical_service(env));
  impl_->services.push_back(make_cluster_service(env));
}

api_services::~api_services() = default;

void api_services::register_with(grpc::ServerBuilder& builder) {
  for (auto& s : impl_->services)
    builder.RegisterService(s.get());
}

int api_services::shutdown(std::chrono::milliseconds grace) {
  auto& env = impl_->env;
  env.stopping = true;
  std::vector<std::function<void()>> pending;
  {
    std::lock_guard<std::mutex> guard{env.streams_mtx};
    for (auto* s : env.streams)
      pending.push_back(s->drain());
  }
  for (auto& p : pending)
    if (p)
      p();
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (env.active_calls.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return env.active_calls.load();
}

}  // namespace healthtwin::services
