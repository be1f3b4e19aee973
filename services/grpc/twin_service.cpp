#include <algorithm>
#include <charconv>
#include <thread>

#include <fmt/format.h>
#include <google/protobuf/util/field_mask_util.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/index/twin_query.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/shard/shard.hpp"
#include "healthtwin/v1/twin.grpc.pb.h"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"
#include "services/grpc/twin_pages.hpp"
#include "services/grpc/twin_reads.hpp"
#include "storage/registry.hpp"
#include "storage/series_table.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using grpc::ServerContext;
using grpc::Status;

constexpr int32_t default_history_page = 10'000;
constexpr int32_t max_history_page = 100'000;
constexpr int32_t default_twin_page = 50;
constexpr int32_t max_twin_page = 500;

using google::protobuf::FieldMask;
using google::protobuf::util::FieldMaskUtil;

// The two watches run on gRPC's callback API (twin_watch.cpp); the other calls are synchronous.
class twin_service final
    : public v1::TwinService::WithCallbackMethod_WatchPatientTwin<
          v1::TwinService::WithCallbackMethod_WatchDeviceTwin<v1::TwinService::Service>> {
public:
  explicit twin_service(service_env& env) : env_(env) {}

  Status GetPatientTwin(ServerContext* call, const v1::GetPatientTwinRequest* req,
                        v1::PatientTwin* resp) override {
    return env_.serve(call, "TwinService/GetPatientTwin", [&](rpc_call& rc) -> Status {
      if (auto bad = check_read_mask(req->read_mask()))
        return invalid_argument(bad->field, bad->description);
      return env_.at_owner(call, allow_patient(rc, req->name(), "name"), req->name(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.twins->GetPatientTwin(&c, *req, resp);
          },
          [&]() -> Status {
            if (auto st = check_patient(env_, rc, req->name(), "name"); !st.ok())
              return st;
            if (auto st = read_patient_twin(env_, env_.timeout(call), req->name(), resp); !st.ok())
              return st;
            apply_read_mask(req->read_mask(), resp);
            return Status::OK;
          });
    });
  }

  Status ListPatientTwins(ServerContext* call, const v1::ListPatientTwinsRequest* req,
                          v1::ListPatientTwinsResponse* resp) override {
    return env_.serve(call, "TwinService/ListPatientTwins", [&](rpc_call& rc) -> Status {
      std::vector<field_violation> bad;
      auto tenant = models::parse_tenant_name(req->parent());
      if (!tenant)
        bad.push_back({"parent", "must be tenants/{tenant}"});
      std::string error;
      auto filter = actors::twin_filter::parse(req->filter(), error);
      if (!filter)
        bad.push_back({"filter", error});
      auto order = actors::twin_order::parse(req->order_by(), error);
      if (!order)
        bad.push_back({"order_by", error});
      if (req->page_size() < 0 || req->page_size() > max_twin_page)
        bad.push_back({"page_size", "must be between 0 and 500"});
      if (auto m = check_read_mask(req->read_mask()))
        bad.push_back(*m);
      auto query = models::twin_hash(req->filter() + '\n' + req->order_by());
      std::optional<summary_row> cursor;
      if (!req->page_token().empty()) {
        cursor = parse_page_token(req->page_token(), query);
        if (!cursor)
          bad.push_back({"page_token", "is not a token this service issued for this filter and order_by"});
      }
      if (!bad.empty())
        return invalid_argument(bad);
      if (auto st = rc.allow({std::string{*tenant}, {}}); !st.ok())
        return st;
      size_t page = req->page_size() == 0 ? default_twin_page : static_cast<size_t>(req->page_size());
      // This node's first page + 1 after the cursor, from its index.
      auto selected = local_patients(env_, *tenant, *filter, *order, page + 1, cursor ? &*cursor : nullptr);
      auto& patients = selected.first;
      size_t total = selected.matched;
      // In a cluster the other members' patients come from their own
      // indexes (the first page + 1 of each after the cursor), merged in order.
      std::set<uint32_t> unreachable;
      if (env_.ctx.forwarding) {
        total += gather_patients(call, *tenant, *req, page + 1, cursor, patients, unreachable);
        std::sort(patients.begin(), patients.end(),
                  [&](auto& a, auto& b) { return order->before(a, b); });
      }
      if (cursor)
        drop_through(patients, *cursor, *order);
      resp->set_total_size(static_cast<int32_t>(total));
      auto end = std::min(patients.size(), page);
      for (size_t i = 0; i < end; ++i) {
        v1::PatientTwin twin;
        auto& name = patients[i].first;
        auto st = Status::OK;
        auto owner = env_.ctx.forwarding ? env_.ctx.forwarding->remote_owner(name) : std::nullopt;
        if (owner && unreachable.count(*owner))
          continue;
        v1::GetPatientTwinRequest get;
        get.set_name(name);
        auto fwd = env_.forward(call, name, [&](owner_stubs& s, grpc::ClientContext& c) {
          return s.twins->GetPatientTwin(&c, get, &twin);
        });
        st = fwd ? *fwd : read_patient_twin(env_, env_.timeout(call), name, &twin);
        if (st.error_code() == grpc::StatusCode::NOT_FOUND)
          continue;  // erased since the summaries were read
        if (owner && st.error_code() == grpc::StatusCode::UNAVAILABLE) {
          unreachable.insert(*owner);  // went down since it answered
          continue;
        }
        if (!st.ok())
          return st;
        apply_read_mask(req->read_mask(), &twin);
        *resp->add_patient_twins() = std::move(twin);
      }
      for (auto m : unreachable)
        resp->add_unreachable_members(env_.ctx.forwarding->member_name(m));
      if (end < patients.size())  // more after the last one listed
        resp->set_next_page_token(page_token(query, patients[end - 1]));
      return Status::OK;
    });
  }

  grpc::ServerWriteReactor<v1::PatientTwin>* WatchPatientTwin(grpc::CallbackServerContext* call,
                                                              const v1::WatchPatientTwinRequest* req) override {
    return watch_patient_twin(env_, call, req);  // twin_watch.cpp
  }

  Status GetDeviceTwin(ServerContext* call, const v1::GetDeviceTwinRequest* req,
                       v1::DeviceTwin* resp) override {
    return env_.serve(call, "TwinService/GetDeviceTwin", [&](rpc_call& rc) -> Status {
      if (auto bad = check_read_mask<v1::DeviceTwin>(req->read_mask()))
        return invalid_argument(bad->field, bad->description);
      return env_.at_owner(call, allow_device(rc, req->name(), "name"), req->name(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.twins->GetDeviceTwin(&c, *req, resp);
          },
          [&]() -> Status {
            storage::device_record rec;
            if (auto st = find_device(env_, rc, req->name(), "name", rec); !st.ok())
              return st;
            if (auto st = read_device_twin(env_, env_.timeout(call), rec, resp); !st.ok())
              return st;
            apply_read_mask(req->read_mask(), resp);
            return Status::OK;
          });
    });
  }

  grpc::ServerWriteReactor<v1::DeviceTwin>* WatchDeviceTwin(grpc::CallbackServerContext* call,
                                                            const v1::WatchDeviceTwinRequest* req) override {
    return watch_device_twin(env_, call, req);  // twin_watch.cpp
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
      return env_.at_owner(call, allow_patient(rc, req->patient(), "patient"), req->patient(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.twins->GetVitalsHistory(&c, *req, resp);
          },
          [&]() -> Status {
            if (auto st = check_patient(env_, rc, req->patient(), "patient"); !st.ok())
              return st;
            auto cursor = env_.ask<actors::series_cursor>(env_.shard_for(req->patient()),
                                                          env_.timeout(call), actors::series_atom::value,
                                                          actors::series_query{req->patient(),
                                                                               static_cast<uint8_t>(*metric)});
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
            // Readings that were not measurements are stored, never shown as values.
            samples.erase(std::remove_if(samples.begin(), samples.end(),
                                         [](const storage::sample& x) { return storage::is_quality_marker(x.value); }),
                          samples.end());
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
    });
  }

private:
  // Asks every other member for its first `limit` patients matching the
  // query, in parallel, within the call's deadline; adds them to
  // `patients` and returns how many match there. Members that do not
  // answer go into `unreachable`.
  size_t gather_patients(const ServerContext* call, std::string_view tenant,
                         const v1::ListPatientTwinsRequest& req, size_t limit,
                         const std::optional<summary_row>& cursor, std::vector<summary_row>& patients,
                         std::set<uint32_t>& unreachable) {
    internal::SummaryQuery q;
    q.set_tenant(std::string{tenant});
    q.set_filter(req.filter());
    q.set_order_by(req.order_by());
    q.set_limit(static_cast<uint32_t>(limit));
    if (cursor)
      *q.mutable_after() = to_peer(*cursor);
    auto deadline = std::chrono::system_clock::now() + env_.forward_timeout(call);
    struct answer {
      uint32_t member;
      grpc::Status status;
      internal::SummaryList list;
    };
    std::vector<std::future<answer>> asked;
    for (auto m : env_.ctx.forwarding->others())
      asked.push_back(std::async(std::launch::async, [&, m] {
        answer a{m, {grpc::StatusCode::UNAVAILABLE, "no channel"}, {}};
        if (auto peer = env_.ctx.forwarding->peer(m)) {
          grpc::ClientContext ctx;
          ctx.set_deadline(deadline);
          a.status = peer->ListPatientSummaries(&ctx, q, &a.list);
        }
        return a;
      }));
    size_t total = 0;
    for (auto& f : asked) {
      auto a = f.get();
      if (!a.status.ok()) {
        unreachable.insert(a.member);
        continue;
      }
      total += a.list.total();
      for (auto& p : a.list.patients())
        patients.push_back(from_peer(p));
    }
    return total;
  }

  service_env& env_;
};

}  // namespace

// Before the first query of this node run, every registered patient goes
// into the twin index with the NEWS2 of its last snapshot (later ones are
// added as they are created; a live twin's fresher summary is kept).
static void seed_index(service_env& env) {
  env.ctx.index->seed_once([&] {
    std::function<bool(uint32_t)> owned;
    if (env.ctx.forwarding)  // in a cluster: the patients of this node's shards
      owned = [members = env.ctx.members](uint32_t shard) { return members->owns(shard); };
    if (auto err = actors::seed_twin_index(*env.ctx.store, *env.ctx.index, owned))
      spdlog::error("twin index: reading the registry failed: {}", storage::describe(err));
  });
}

actors::twin_index::selection local_patients(service_env& env, std::string_view tenant,
                                             const actors::twin_filter& filter, const actors::twin_order& order,
                                             size_t limit, const summary_row* after) {
  seed_index(env);
  actors::twin_index::summary_test past;
  if (after)  // strictly after the cursor in `order`
    past = [&](std::string_view name, const actors::patient_summary& s) {
      return order.before(after->first, after->second, name, s);
    };
  return env.ctx.index->select(
      tenant, [&](std::string_view name, const actors::patient_summary& s) { return filter.matches(name, s); },
      past,
      [&](std::string_view a, const actors::patient_summary& x, std::string_view b, const actors::patient_summary& y) {
        return order.before(a, x, b, y);
      },
      limit);
}

grpc::Status local_summaries(service_env& env, const internal::SummaryQuery& q,
                             internal::SummaryList* out) {
  std::string error;
  auto filter = actors::twin_filter::parse(q.filter(), error);
  if (!filter)
    return invalid_argument("filter", error);
  auto order = actors::twin_order::parse(q.order_by(), error);
  if (!order)
    return invalid_argument("order_by", error);
  std::optional<summary_row> after;
  if (q.has_after())
    after = from_peer(q.after());
  auto selected = local_patients(env, q.tenant(), *filter, *order, q.limit(), after ? &*after : nullptr);
  out->set_total(static_cast<uint32_t>(selected.matched));
  for (auto& p : selected.first)
    *out->add_patients() = to_peer(p);
  return grpc::Status::OK;
}

std::unique_ptr<grpc::Service> make_twin_service(service_env& env) {
  return std::make_unique<twin_service>(env);
}

}  // namespace healthtwin::services
