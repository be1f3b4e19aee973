#include <cmath>

#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/shard/shard.hpp"
#include "healthtwin/v1/clinical.grpc.pb.h"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using grpc::ServerContext;
using grpc::Status;
using models::metric;

void to_api(const models::patient_settings& in, v1::PatientSettings* out) {
  out->set_spo2_scale2(in.spo2_scale2);
  for (uint8_t n = 1; n <= models::metric_count; ++n) {
    auto& l = in.limits[n];
    if (!l)
      continue;
    auto* a = out->add_alert_limits();
    a->set_metric(static_cast<v1::Metric>(n));
    if (l->high_at_or_below) a->set_high_at_or_below(*l->high_at_or_below);
    if (l->medium_at_or_below) a->set_medium_at_or_below(*l->medium_at_or_below);
    if (l->medium_at_or_above) a->set_medium_at_or_above(*l->medium_at_or_above);
    if (l->high_at_or_above) a->set_high_at_or_above(*l->high_at_or_above);
    a->set_hysteresis(l->hysteresis);
  }
  out->set_baseline_k(in.baseline_k);
  set_duration(out->mutable_baseline_min_duration(), in.baseline_min_duration_ms);
  set_duration(out->mutable_forecast_horizon(), in.forecast_horizon_ms);
  set_duration(out->mutable_glucose_forecast_horizon(), in.glucose_forecast_horizon_ms);
  set_duration(out->mutable_device_offline_after(), in.device_offline_after_ms);
  out->set_battery_low_percent(in.battery_low_percent);
}

// The request field a models::patient_settings::validate() name stands for.
std::string api_field(const std::string& model_field) {
  if (model_field.rfind("limits.", 0) == 0)
    return "settings.alert_limits";
  if (model_field.size() > 3 && model_field.compare(model_field.size() - 3, 3, "_ms") == 0)
    return "settings." + model_field.substr(0, model_field.size() - 3);
  return "settings." + model_field;
}

// Reads API settings; appends what is wrong to `bad`.
models::patient_settings from_api(const v1::PatientSettings& in,
                                  std::vector<field_violation>& bad) {
  models::patient_settings s;
  s.spo2_scale2 = in.spo2_scale2();
  for (int i = 0; i < in.alert_limits_size(); ++i) {
    auto& a = in.alert_limits(i);
    auto field = "settings.alert_limits[" + std::to_string(i) + "]";
    auto m = models::metric_from_number(static_cast<uint32_t>(a.metric()));
    if (!m || !models::default_limits(*m)) {
      bad.push_back({field + ".metric", "must be a metric with alarm limits"});
      continue;
    }
    auto& slot = s.limits[static_cast<size_t>(*m)];
    if (slot) {
      bad.push_back({field + ".metric", "appears twice"});
      continue;
    }
    models::threshold_limits l;
    if (a.has_high_at_or_below()) l.high_at_or_below = a.high_at_or_below();
    if (a.has_medium_at_or_below()) l.medium_at_or_below = a.medium_at_or_below();
    if (a.has_medium_at_or_above()) l.medium_at_or_above = a.medium_at_or_above();
    if (a.has_high_at_or_above()) l.high_at_or_above = a.high_at_or_above();
    l.hysteresis = a.hysteresis();
    slot = l;
    models::patient_settings one;
    one.limits[static_cast<size_t>(*m)] = l;
    if (one.validate())
      bad.push_back({field, "limits must be in the metric's range and ordered high below <= "
                            "medium below < medium above <= high above, hysteresis >= 0"});
  }
  if (in.has_baseline_k()) s.baseline_k = in.baseline_k();
  if (in.has_baseline_min_duration())
    s.baseline_min_duration_ms = to_ms(in.baseline_min_duration());
  if (in.has_forecast_horizon()) s.forecast_horizon_ms = to_ms(in.forecast_horizon());
  if (in.has_glucose_forecast_horizon())
    s.glucose_forecast_horizon_ms = to_ms(in.glucose_forecast_horizon());
  if (in.has_device_offline_after())
    s.device_offline_after_ms = to_ms(in.device_offline_after());
  if (in.has_battery_low_percent()) s.battery_low_percent = in.battery_low_percent();
  if (bad.empty()) {
    if (auto field = s.validate())
      bad.push_back({api_field(*field), "out of range (see docs/api.md)"});
  }
  return s;
}

class clinical_service final : public v1::ClinicalService::Service {
public:
  explicit clinical_service(service_env& env) : env_(env) {}

  Status GetPatientSettings(ServerContext* call, const v1::GetPatientSettingsRequest* req,
                            v1::PatientSettings* resp) override {
    return env_.serve(call, "ClinicalService/GetPatientSettings", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_patient(rc, req->patient(), "patient"), req->patient(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.clinical->GetPatientSettings(&c, *req, resp);
          },
          [&]() -> Status {
            if (auto st = check_patient(env_, rc, req->patient(), "patient"); !st.ok())
              return st;
            auto view = env_.ask<actors::patient_view>(env_.shard_for(req->patient()), env_.timeout(call),
                                                       actors::patient_view_atom::value, req->patient());
            if (!view)
              return to_status(view.error());
            to_api(view->settings, resp);
            return Status::OK;
          });
    });
  }

  Status UpdatePatientSettings(ServerContext* call, const v1::UpdatePatientSettingsRequest* req,
                               v1::PatientSettings* resp) override {
    return env_.serve(call, "ClinicalService/UpdatePatientSettings", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_patient(rc, req->patient(), "patient"), req->patient(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.clinical->UpdatePatientSettings(&c, *req, resp);
          },
          [&]() -> Status {
            if (auto st = check_patient(env_, rc, req->patient(), "patient"); !st.ok())
              return st;
            std::vector<field_violation> bad;
            auto settings = from_api(req->settings(), bad);
            auto updated_by = acting_as(rc, req->updated_by(), "updated_by", bad);
            if (!bad.empty())
              return invalid_argument(bad);
            actors::patient_input in;
            in.patient = req->patient();
            in.recorded_by = updated_by;
            in.settings = std::make_shared<const models::patient_settings>(settings);
            auto r = env_.sequence(call, std::move(in));
            if (r.error)
              return to_status(r.error);
            to_api(settings, resp);
            return Status::OK;
          });
    });
  }

  Status RecordObservations(ServerContext* call, const v1::RecordObservationsRequest* req,
                            v1::RecordObservationsResponse* resp) override {
    return env_.serve(call, "ClinicalService/RecordObservations", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_patient(rc, req->patient(), "patient"), req->patient(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.clinical->RecordObservations(&c, *req, resp);
          },
          [&]() -> Status {
            if (auto st = check_patient(env_, rc, req->patient(), "patient"); !st.ok())
              return st;
            std::vector<field_violation> bad;
            if (!req->has_consciousness() && !req->has_oxygen_flow())
              bad.push_back({"consciousness", "set consciousness and/or oxygen_flow"});
            if (req->has_consciousness() && req->consciousness() > 4)
              bad.push_back({"consciousness", "must be an ACVPU code 0-4"});
            auto o2 = models::range_of(metric::oxygen_flow);
            if (req->has_oxygen_flow() &&
                !(std::isfinite(req->oxygen_flow()) && req->oxygen_flow() >= o2.min &&
                  req->oxygen_flow() <= o2.max))
              bad.push_back({"oxygen_flow", "must be 0-60 L/min"});
            auto now = service_env::now_ms();
            auto t = req->has_observe_time() ? to_ms(req->observe_time()) : now;
            if (t <= 0 || t > now + env_.settings.max_clock_skew.count())
              bad.push_back({"observe_time", "must not be in the future"});
            auto recorded_by = acting_as(rc, req->recorded_by(), "recorded_by", bad);
            if (!bad.empty())
              return invalid_argument(bad);
            actors::patient_input in;
            in.patient = req->patient();
            in.recorded_by = recorded_by;
            if (req->has_consciousness())
              in.observations.push_back({0, t, static_cast<double>(req->consciousness()), metric::consciousness});
            if (req->has_oxygen_flow())
              in.observations.push_back({0, t, req->oxygen_flow(), metric::oxygen_flow});
            auto r = env_.sequence(call, std::move(in));
            if (r.error)
              return to_status(r.error);
            set_timestamp(resp->mutable_observe_time(), t);
            return Status::OK;
          });
    });
  }

private:
  service_env& env_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_clinical_service(service_env& env) {
  return std::make_unique<clinical_service>(env);
}

}  // namespace healthtwin::services
