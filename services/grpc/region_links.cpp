#include "services/grpc/region_links.hpp"

#include <future>
#include <vector>

#include "services/grpc/client_channel.hpp"
#include "services/grpc/read_file.hpp"

namespace healthtwin::services {

region_links::region_links(region_settings settings) : settings_(std::move(settings)) {}

std::string region_links::endpoint(std::string_view region) const {
  auto it = settings_.endpoints.find(region);
  return it == settings_.endpoints.end() ? std::string{} : it->second;
}

std::shared_ptr<owner_stubs> region_links::stubs(std::string_view region, std::string& why) {
  auto target = endpoint(region);
  if (target.empty()) {
    why = "no endpoint is configured for region " + std::string{region};
    return nullptr;
  }
  channel_settings cs;
  cs.target = target;
  cs.ca_file = settings_.ca_file;
  auto files = tls_files_stamp(cs);
  std::lock_guard g{mtx_};
  auto& l = links_[std::string{region}];
  if (!l.stubs || l.files != files) {  // first use, or the CA was rotated
    auto channel = make_channel(cs, why);
    if (!channel)
      return nullptr;
    l.stubs = make_owner_stubs(channel);
    l.files = files;
  }
  return l.stubs;
}

twin_home region_links::locate(const std::string& name,
                               const std::function<void(grpc::ClientContext&)>& prepare) {
  struct ask {
    std::string region;
    grpc::ClientContext context;
    v1::LocateTwinRequest request;
    v1::TwinLocation answer;
    std::promise<grpc::Status> done;
  };
  std::vector<std::unique_ptr<ask>> asks;
  for (auto& [region, target] : settings_.endpoints) {
    auto& a = *asks.emplace_back(std::make_unique<ask>());
    a.region = region;
    std::string why;
    auto s = stubs(region, why);
    if (!s) {
      a.done.set_value(grpc::Status(grpc::StatusCode::UNAVAILABLE, why));
      continue;
    }
    prepare(a.context);
    a.request.set_name(name);
    s->registry->async()->LocateTwin(&a.context, &a.request, &a.answer,
                                     [&a](grpc::Status st) { a.done.set_value(std::move(st)); });
  }
  twin_home home{grpc::Status(grpc::StatusCode::NOT_FOUND, "not registered in any region"), {}};
  std::string unreachable;
  for (auto& a : asks) {
    auto st = a->done.get_future().get();  // each call ends by its deadline
    if (st.ok() && home.region.empty()) {
      // The region that has it says where it is homed (itself).
      home.region = a->answer.home_region().empty() ? a->region : a->answer.home_region();
      home.status = grpc::Status::OK;
    } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
               st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      unreachable += (unreachable.empty() ? "" : ", ") + a->region;
    } else if (!st.ok() && st.error_code() != grpc::StatusCode::NOT_FOUND && home.region.empty() &&
               home.status.error_code() == grpc::StatusCode::NOT_FOUND) {
      home.status = grpc::Status(st.error_code(), "region " + a->region + ": " + st.error_message());
    }
  }
  if (!home.region.empty()) {
    std::lock_guard g{mtx_};
    if (remembered_.size() >= settings_.max_remembered)
      remembered_.clear();
    remembered_[name] = {home.region, std::chrono::steady_clock::now() + settings_.remember_for};
  } else if (!unreachable.empty() && home.status.error_code() == grpc::StatusCode::NOT_FOUND) {
    home.status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "not registered in this region, and region " + unreachable +
                                   " could not be asked whether it is registered there");
  }
  return home;
}

std::string region_links::remembered(std::string_view name) {
  std::lock_guard g{mtx_};
  auto it = remembered_.find(std::string{name});
  if (it == remembered_.end())
    return {};
  if (it->second.until < std::chrono::steady_clock::now()) {
    remembered_.erase(it);
    return {};
  }
  return it->second.region;
}

void region_links::forget(std::string_view name) {
  std::lock_guard g{mtx_};
  remembered_.erase(std::string{name});
}

}  // namespace healthtwin::services
