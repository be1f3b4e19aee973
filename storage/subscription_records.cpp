#include "storage/subscription_records.hpp"

#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

constexpr std::string_view prefix = "fhir-subscription/";
constexpr std::string_view prefix_end = "fhir-subscription0";  // '0' follows '/'

std::string key_of(std::string_view tenant_and_id) {
  return std::string{prefix}.append(tenant_and_id);
}

}  // namespace

caf::expected<std::vector<std::pair<std::string, std::string>>> load_subscription_records(store& db) {
  std::vector<std::pair<std::string, std::string>> out;
  auto err = db.scan(column::meta, prefix, prefix_end, [&](std::string_view key, std::string_view value) {
    out.emplace_back(std::string{key.substr(prefix.size())}, std::string{value});
    return true;
  });
  if (err)
    return err;
  return out;
}

caf::error put_subscription_record(store& db, std::string_view tenant_and_id, std::string_view bytes) {
  write_batch wb{db};
  wb.put(column::meta, key_of(tenant_and_id), bytes);
  return db.write(wb, true);
}

caf::error drop_subscription_record(store& db, std::string_view tenant_and_id) {
  write_batch wb{db};
  wb.erase(column::meta, key_of(tenant_and_id));
  return db.write(wb, true);
}

}  // namespace healthtwin::storage
