#include "services/mqtt/device_commands.hpp"

#include <vector>

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include "services/mqtt/telemetry.hpp"

namespace healthtwin::mqtt {

device_commands::device_commands(settings s, publish_fn publish, get_device_fn get_device, clock_fn now_ms)
    : s_(s), publish_(std::move(publish)), get_device_(std::move(get_device)), now_ms_(std::move(now_ms)) {}

std::string device_commands::body(const v1::DeviceConfig& desired) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;  // "firmware": "" says "no target" outright
  (void)google::protobuf::util::MessageToJsonString(desired, &out, options);
  return out;
}

void device_commands::seen(const std::string& device_name) {
  std::lock_guard lk{mtx_};
  devices_[device_name].last_seen_ms = now_ms_();
}

bool device_commands::offer(const v1::Device& d) {
  const auto& desired = d.desired();
  if (desired.version() == 0)
    return true;  // nothing was ever desired of it
  {
    std::lock_guard lk{mtx_};
    auto it = devices_.find(d.name());
    if (it != devices_.end() && it->second.published && it->second.version >= desired.version())
      return true;
  }
  auto topic = commands_topic(d.name());
  if (topic.empty() || !publish_(topic, body(desired)))
    return false;
  std::lock_guard lk{mtx_};
  auto& e = devices_[d.name()];
  if (!e.published || e.version < desired.version()) {
    e.published = true;
    e.version = desired.version();
  }
  return true;
}

size_t device_commands::poll() {
  std::vector<std::string> names;
  {
    std::lock_guard lk{mtx_};
    auto horizon = now_ms_() - s_.forget_after.count();
    for (auto it = devices_.begin(); it != devices_.end();)
      if (it->second.last_seen_ms < horizon) {
        it = devices_.erase(it);
      } else {
        names.push_back(it->first);
        ++it;
      }
  }
  size_t published = 0;
  for (const auto& name : names) {
    v1::Device d;
    auto st = get_device_(name, d);
    if (!st.ok()) {
      if (st.error_code() != grpc::StatusCode::NOT_FOUND)
        spdlog::warn("mqtt: cannot read a device's desired configuration (status {})",
                     static_cast<int>(st.error_code()));
      continue;
    }
    uint64_t before = 0;
    bool had = false;
    {
      std::lock_guard lk{mtx_};
      auto& e = devices_[name];
      had = e.published;
      before = e.version;
    }
    if (offer(d) && d.desired().version() != 0 && (!had || d.desired().version() > before))
      ++published;
  }
  return published;
}

}  // namespace healthtwin::mqtt
