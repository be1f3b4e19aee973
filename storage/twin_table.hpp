#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "actors/models/twin_name.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

/// A column family keyed by twin: `registry` (patient and device records)
/// or `twins` (snapshots). Values are serialized records owned by the
/// caller; patient snapshots are sealed with the patient's data key
/// (store::seal, see stored_value) and opened by get. Keys start with the twin's
/// shard. Thread-safe.
class twin_table {
public:
  twin_table(store& s, column c) : store_(s), column_(c) {}

  caf::expected<std::optional<std::string>> get(models::twin_kind kind, std::string_view name);

  void put(write_batch& batch, models::twin_kind kind, std::string_view name,
           std::string_view value);

  /// The value as this table stores it (patient snapshots sealed), for a
  /// caller that writes many in one batch with put().
  caf::expected<std::string> stored_value(models::twin_kind kind, std::string_view name,
                                          std::string value);

  std::string key(models::twin_kind kind, std::string_view name) const;

private:
  bool sealed(models::twin_kind kind) const;
  store& store_;
  column column_;
};

}  // namespace healthtwin::storage
