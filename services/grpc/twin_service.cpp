#include <algorithm>
#include <charconv>

#include "actors/alerts/alert_hub.hpp"
#include "actors/shard/shard.hpp"
#include "healthtwin/v1/twin.grpc.pb.h"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/series_table.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using grpc::ServerContext;
using grpc::Status;

constexpr int32_t default_history_page = 10'000;
constexpr int32_t max_history_page = 100'000;

class twin_service final : public v1::TwinService::Service {
public:
  explicit twin_service(service_env& env) : env_(env) {}

  Status GetPatientTwin(ServerContext* call, const v1::GetPatientTwinRequest* req,
                        v1::PatientTwin* resp) override {
    return env_.serve(call, "TwinService/GetPatientTwin", [&](rpc_call& rc) -> Status {
      if (auto st = check_patient(env_, rc, req->name(), "name"); !st.ok())
        return st;
      auto view = env_.ask<actors::patient_view>(env_.shard_for(req->name()), env_.timeout(call),
                                                 actors::patient_view_atom::value, req->name());
      if (!view)
        return to_status(view.error());
      auto alerts = env_.ask<std::vector<actors::alert_record>>(
          env_.ctx.alert_hub, env_.timeout(call), actors::alert_list_atom::value, req->name());
      if (!alerts)
        return to_status(alerts.error());
      to_api(*view, *alerts, resp);
      return Status::OK;
    });
  }

  Status GetDeviceTwin(ServerContext* call, const v1::GetDeviceTwinRequest* req,
                       v1::DeviceTwin* resp) override {
    return env_.serve(call, "TwinService/GetDeviceTwin", [&](rpc_call& rc) -> Status {
      storage::device_record rec;
      if (auto st = find_device(env_, rc, req->name(), "name", rec); !st.ok())
        return st;
      auto view = env_.ask<actors::device_view>(env_.shard_for(req->name()), env_.timeout(call),
                                                actors::device_view_atom::value, req->name());
      if (!view)
        return to_status(view.error());
      bool online = view->last_receive_time_ms != 0 &&
                    service_env::now_ms() - view->last_receive_time_ms <=
                        env_.settings.heartbeat_timeout.count();
      to_api(*view, rec, online, resp);
      return Status::OK;
    });
  }

  Status GetVitalsHistory(ServerContext* call, const v1::GetVitalsHistoryRequest* req,
                          v1::VitalsHistory* resp) override {
    return env_.serve(call, "TwinService/GetVitalsHistory", [&](rpc_call& rc) -> Status {
      std::vector<field_violation> bad;
      auto metric = models::metric_from_number(static_cast<uint32_t>(req->metric()));
      if (!metric)
        bad.push_back({"metric", "must be a known Metric other than UNSPECIFIED"});
      if (req->end_time_ms() <= req->start_time_ms())
        bad.push_back({"end_time_ms", "must be greater than start_time_ms"});
      if (req->page_size() < 0 || req->page_size() > max_history_page)
        bad.push_back({"page_size", "must be between 0 and 100000"});
      int64_t step_ms = 0;
      if (req->has_step()) {
        step_ms = to_ms(req->step());
        if (step_ms < 1000 || step_ms > 86'400'000)
          bad.push_back({"step", "must be between 1 s and 1 day"});
      }
      size_t offset = 0;
      if (!req->page_token().empty()) {
        auto& t = req->page_token();
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), offset);
        if (ec != std::errc{} || p != t.data() + t.size())
          bad.push_back({"page_token", "is not a token this service issued"});
      }
      if (!bad.empty())
        return invalid_argument(bad);
      if (auto st = check_patient(env_, rc, req->patient(), "patient"); !st.ok())
        return st;
      auto cursor = env_.ask<actors::series_cursor>(env_.shard_for(req->patient()),
                                                    env_.timeout(call), actors::series_atom::value,
                                                    req->patient(), static_cast<uint8_t>(*metric));
      if (!cursor)
        return to_status(cursor.error());
      std::vector<storage::sample> samples;
      storage::series_table series{*env_.ctx.store};
      if (auto err = series.read(req->patient(), static_cast<uint8_t>(*metric), req->start_time_ms(),
                                 req->end_time_ms(), cursor->closed_chunks, samples))
        return to_status(err);
      for (auto& s : cursor->open_samples)
        if (s.time_ms >= req->start_time_ms() && s.time_ms < req->end_time_ms())
          samples.push_back(s);
      std::stable_sort(samples.begin(), samples.end(),
                       [](const auto& a, const auto& b) { return a.time_ms < b.time_ms; });
      size_t page = req->page_size() == 0 ? default_history_page : static_cast<size_t>(req->page_size());
      if (step_ms > 0) {
        auto buckets = storage::downsample(samples, req->start_time_ms(), step_ms);
        auto first = std::min(offset, buckets.size());
        auto last = std::min(buckets.size(), first + page);
        for (auto i = first; i < last; ++i) {
          auto* b = resp->add_buckets();
          b->set_start_time_ms(buckets[i].start_ms);
          b->set_min(buckets[i].min);
          b->set_max(buckets[i].max);
          b->set_mean(buckets[i].mean);
          b->set_count(buckets[i].count);
        }
        if (last < buckets.size())
          resp->set_next_page_token(std::to_string(last));
        return Status::OK;
      }
      auto first = std::min(offset, samples.size());
      auto last = std::min(samples.size(), first + page);
      resp->mutable_time_ms()->Reserve(static_cast<int>(last - first));
      resp->mutable_value()->Reserve(static_cast<int>(last - first));
      for (auto i = first; i < last; ++i) {
        resp->add_time_ms(samples[i].time_ms);
        resp->add_value(samples[i].value);
      }
      if (last < samples.size())
        resp->set_next_page_token(std::to_string(last));
      return Status::OK;
    });
  }

private:
  service_env& env_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_twin_service(service_env& env) {
  return std::make_unique<twin_service>(env);
}

}  // namespace healthtwin::services
