#include "storage/twin_table.hpp"

#include "storage/key_codec.hpp"

namespace healthtwin::storage {

std::string twin_table::key(models::twin_kind kind, std::string_view name) const {
  return key_codec::twin_key(models::shard_of(name, store_.shards()), kind, name);
}

bool twin_table::sealed(models::twin_kind kind) const {
  return column_ == column::twins && kind == models::twin_kind::patient;
}

caf::expected<std::optional<std::string>> twin_table::get(models::twin_kind kind,
                                                          std::string_view name) {
  return sealed(kind) ? store_.get_unsealed(column_, key(kind, name))
                      : store_.get(column_, key(kind, name));
}

void twin_table::put(write_batch& batch, models::twin_kind kind, std::string_view name,
                     std::string_view value) {
  batch.put(column_, key(kind, name), value);
}

caf::expected<std::string> twin_table::stored_value(models::twin_kind kind,
                                                    std::string_view name, std::string value) {
  if (!sealed(kind))
    return value;
  return store_.seal(name, value);
}

}  // namespace healthtwin::storage
