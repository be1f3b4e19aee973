#include "storage/cluster_records.hpp"

#include <charconv>

#include <spdlog/spdlog.h>

#include "actors/models/quoted.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

constexpr std::string_view drops_owed_key = "cluster_drops";

}  // namespace

caf::expected<std::optional<std::string>> load_cluster_record(store& db) {
  return db.get(column::meta, cluster_state_key);
}

caf::error persist_cluster_record(store& db, std::string_view bytes) {
  write_batch wb{db};
  wb.put(column::meta, cluster_state_key, bytes);
  return db.write(wb, true);
}

caf::expected<std::vector<uint32_t>> load_drops_owed(store& db) {
  auto owed = db.get(column::meta, drops_owed_key);
  if (!owed)
    return owed.error();
  std::vector<uint32_t> shards;
  if (!*owed)
    return shards;
  std::string_view rest{**owed};
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    uint32_t s = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), s);
    if (ec != std::errc{} || end != item.data() + item.size() || s >= db.shards()) {
      spdlog::error("hand-off: the owed drops record names {}, not a shard; ignored",
                    models::quoted_input(item));
      continue;
    }
    shards.push_back(s);
  }
  return shards;
}

caf::error note_drops_owed(store& db, const std::vector<uint32_t>& shards) {
  write_batch wb{db};
  if (shards.empty()) {
    wb.erase(column::meta, drops_owed_key);
  } else {
    std::string list;
    for (auto s : shards)
      list += (list.empty() ? "" : ",") + std::to_string(s);
    wb.put(column::meta, drops_owed_key, list);
  }
  return db.write(wb, true);
}

}  // namespace healthtwin::storage
