#include "storage/meta_records.hpp"

#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

std::string key_of(std::string_view kind, std::string_view tenant_and_id) {
  return std::string{kind}.append("/").append(tenant_and_id);
}

}  // namespace

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
