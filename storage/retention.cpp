#include "storage/retention.hpp"

#include <spdlog/spdlog.h>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/series_codec.hpp"

namespace healthtwin::storage {

namespace {

// Deletes in slices so that a sweep never builds one huge batch.
class deleter {
public:
  deleter(store& s, column c) : store_(s), column_(c), batch_(s) {}

  caf::error erase(std::string_view key) {
    batch_.erase(column_, key);
    if (batch_.count() < 10'000)
      return caf::none;
    return flush();
  }

  caf::error flush() {
    if (batch_.count() == 0)
      return caf::none;
    auto err = store_.write(batch_, false);
    batch_.clear();
    return err;
  }

private:
  store& store_;
  column column_;
  write_batch batch_;
};

// series key: shard(2) patient 0x00 metric(1) chunk_no(4)
std::string_view patient_of_series_key(std::string_view key) {
  return key.size() > 8 ? key.substr(2, key.size() - 8) : std::string_view{};
}

}  // namespace

caf::expected<retention_report> enforce_retention(store& s, const retention_settings& settings,
                                                  int64_t now_ms) {
  retention_report report;
  caf::error inner;

  deleter series{s, column::series};
  // Values whose owner was erased can never be read again: they go too.
  auto erased_leftover = [&](deleter& d, std::string_view key,
                             const caf::expected<std::string>& plain, uint64_t& count) {
    if (plain || plain.error() != errc::erased)
      return false;
    if ((inner = d.erase(key)))
      return true;
    ++count;
    return true;
  };

  auto err = s.scan(column::series, {}, {}, [&](std::string_view key, std::string_view stored) {
    auto value = s.unseal(stored);
    if (erased_leftover(series, key, value, report.series_chunks))
      return !inner;
    chunk_header h;
    auto tenant = models::tenant_of(patient_of_series_key(key));
    if (!value || !read_chunk_header(*value, h))
      return true;  // not ours to judge: left for the reader to report
    if (h.max_time_ms >= now_ms - settings.of(tenant).raw_readings_ms)
      return true;
    if ((inner = series.erase(key)))
      return false;
    ++report.series_chunks;
    return true;
  });
  if (!err && !inner)
    inner = series.flush();
  if (err || inner)
    return err ? err : inner;

  deleter alerts{s, column::alerts};
  err = s.scan(column::alerts, "a", "b", [&](std::string_view key, std::string_view stored) {
    auto value = s.unseal(stored);
    if (erased_leftover(alerts, key, value, report.alerts))
      return !inner;
    internal::AlertRecord r;
    if (!value || !r.ParseFromArray(value->data(), static_cast<int>(value->size())) ||
        r.state() != 3 /* resolved */)
      return true;
    auto tenant = models::tenant_of(r.name());
    if (r.resolve_time_ms() >= now_ms - settings.of(tenant).alerts_ms)
      return true;
    if ((inner = alerts.erase(key)))
      return false;
    ++report.alerts;
    return true;
  });
  if (!err && !inner)
    err = s.scan(column::alerts, "e", "f", [&](std::string_view key, std::string_view stored) {
      auto value = s.unseal(stored);
      if (erased_leftover(alerts, key, value, report.alert_events))
        return !inner;
      internal::AlertEventRecord e;
      if (!value || !e.ParseFromArray(value->data(), static_cast<int>(value->size())))
        return true;
      auto tenant = models::tenant_of(e.alert().name());
      if (e.event_time_ms() >= now_ms - settings.of(tenant).alerts_ms)
        return true;
      if ((inner = alerts.erase(key)))
        return false;
      ++report.alert_events;
      return true;
    });
  if (!err && !inner)
    inner = alerts.flush();
  if (err || inner)
    return err ? err : inner;
  return report;
}

retention_sweeper::retention_sweeper(store& s, retention_settings settings,
                                     std::chrono::milliseconds interval) {
  thread_ = std::thread([this, &s, settings = std::move(settings), interval] {
    std::unique_lock<std::mutex> lock{mtx_};
    while (!cv_.wait_for(lock, interval, [this] { return stopping_; })) {
      auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
      auto r = enforce_retention(s, settings, now);
      if (!r)
        spdlog::error("retention sweep failed: {}", describe(r.error()));
      else if (r->series_chunks + r->alerts + r->alert_events > 0)
        spdlog::info("retention: removed {} series chunks, {} resolved alerts, {} alert events",
                     r->series_chunks, r->alerts, r->alert_events);
    }
  });
}

retention_sweeper::~retention_sweeper() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace healthtwin::storage
