#include "storage/meta_records.hpp"

#include "actors/models/twin_name.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

std::string key_of(std::string_view kind, std::string_view tenant_and_id) {
  return std::string{kind}.append("/").append(tenant_and_id);
}

// Kinds kept in the shard of their resource: the kind and the collection
// of its resource name ("tenants/{t}/{collection}/{id}").
constexpr std::pair<std::string_view, std::string_view> sharded_kinds[] = {{"rollout", "rollouts"}};

}  // namespace

std::optional<uint32_t> meta_shard(std::string_view key, uint32_t shards) {
  for (auto [kind, collection] : sharded_kinds) {
    if (key.size() <= kind.size() + 1 || !key.starts_with(kind) || key[kind.size()] != '/')
      continue;
    auto rest = key.substr(kind.size() + 1);  // {tenant}/{id}
    auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size())
      return std::nullopt;
    auto name = std::string{"tenants/"}
                    .append(rest.substr(0, slash))
                    .append("/")
                    .append(collection)
                    .append("/")
                    .append(rest.substr(slash + 1));
    return models::shard_of(name, shards);
  }
  return std::nullopt;
}

caf::expected<std::vector<meta_entry>> meta_records_of_shard(store& db, uint32_t shard) {
  std::vector<meta_entry> out;
  for (auto [kind, _] : sharded_kinds) {
    auto first = std::string{kind}.append("/");
    auto end = std::string{kind}.append("0");
    auto err = db.scan(column::meta, first, end, [&](std::string_view key, std::string_view value) {
      if (meta_shard(key, db.shards()) == shard)
        out.push_back({std::string{key}, std::string{value}});
      return true;
    });
    if (err)
      return err;
  }
  return out;
}

caf::expected<std::vector<std::pair<std::string, std::string>>> load_meta_records(store& db,
                                                                                  std::string_view kind) {
  std::vector<std::pair<std::string, std::string>> out;
  auto first = std::string{kind}.append("/");
  auto end = std::string{kind}.append("0");  // '0' follows '/'
  auto err = db.scan(column::meta, first, end, [&](std::string_view key, std::string_view value) {
    out.emplace_back(std::string{key.substr(first.size())}, std::string{value});
    return true;
  });
  if (err)
    return err;
  return out;
}

caf::error put_meta_record(store& db, std::string_view kind, std::string_view tenant_and_id,
                           std::string_view bytes) {
  write_batch wb{db};
  wb.put(column::meta, key_of(kind, tenant_and_id), bytes);
  return db.write(wb, true);
}

caf::error drop_meta_record(store& db, std::string_view kind, std::string_view tenant_and_id) {
  write_batch wb{db};
  wb.erase(column::meta, key_of(kind, tenant_and_id));
  return db.write(wb, true);
}

}  // namespace healthtwin::storage
