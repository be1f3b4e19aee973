#include "storage/alert_table.hpp"

#include "actors/models/twin_name.hpp"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"

namespace healthtwin::storage {

namespace {

// A stored value opened; nullopt when its owner was erased (scans skip
// it) or when it fails to open (then `error` says why and scans stop).
std::optional<std::string> open_unless_erased(store& s, std::string_view stored,
                                              caf::error& error) {
  auto plain = s.unseal(stored);
  if (plain)
    return std::move(*plain);
  if (plain.error() != errc::erased)
    error = plain.error();
  return std::nullopt;
}

}  // namespace

caf::expected<std::optional<std::string>> alert_table::get(std::string_view patient,
                                                           std::string_view alert_id) {
  auto shard = models::shard_of(patient, store_.shards());
  return store_.get_unsealed(column::alerts, key_codec::alert_key('a', shard, patient, alert_id));
}

caf::error alert_table::put(write_batch& batch, std::string_view patient,
                            std::string_view alert_id, std::string_view record, bool active) {
  auto sealed = store_.seal(patient, record);
  if (!sealed)
    return sealed.error();
  auto shard = models::shard_of(patient, store_.shards());
  batch.put(column::alerts, key_codec::alert_key('a', shard, patient, alert_id), *sealed);
  auto index = key_codec::alert_key('x', shard, patient, alert_id);
  if (active)
    batch.put(column::alerts, index, {});
  else
    batch.erase(column::alerts, index);
  return caf::none;
}

caf::error alert_table::put_event(write_batch& batch, uint64_t sequence, std::string_view owner,
                                  std::string_view event) {
  auto sealed = store_.seal(owner, event);
  if (!sealed)
    return sealed.error();
  batch.put(column::alerts, key_codec::alert_event_key(sequence), *sealed);
  return caf::none;
}

caf::expected<uint64_t> alert_table::last_event_sequence() {
  auto last = store_.last_key(column::alerts, "f");
  if (!last)
    return last.error();
  if (!*last || (*last)->empty() || (**last)[0] != 'e')
    return uint64_t{0};
  return key_codec::get_u64(std::string_view{**last}.substr(1));
}

caf::error alert_table::scan_events(uint64_t after,
                                    const std::function<bool(uint64_t, std::string_view)>& fn) {
  caf::error inner;
  auto err = store_.scan(column::alerts, key_codec::alert_event_key(after + 1), "f",
                         [&](std::string_view key, std::string_view value) {
                           auto plain = open_unless_erased(store_, value, inner);
                           if (!plain)
                             return !inner;
                           return fn(key_codec::get_u64(key.substr(1)), *plain);
                         });
  return err ? err : inner;
}

namespace {

// The keys of one kind ('x', 's', ...) of alert entries: all, or one shard's.
std::pair<std::string, std::string> kind_range(char kind, std::optional<uint32_t> shard) {
  std::string begin{kind}, end{static_cast<char>(kind + 1)};
  if (shard) {
    key_codec::put_u16(begin, static_cast<uint16_t>(*shard));
    if (*shard + 1 < 65536) {
      end = std::string{kind};
      key_codec::put_u16(end, static_cast<uint16_t>(*shard + 1));
    }
  }
  return {begin, end};
}

}  // namespace

caf::error alert_table::scan_active(const std::function<void(std::string_view)>& fn,
                                    std::optional<uint32_t> shard) {
  caf::error inner;
  auto [begin, end] = kind_range('x', shard);
  auto err = store_.scan(column::alerts, begin, end, [&](std::string_view key, std::string_view) {
    std::string record_key{key};
    record_key[0] = 'a';
    auto v = store_.get(column::alerts, record_key);
    if (!v) {
      inner = v.error();
      return false;
    }
    if (!*v)
      return true;
    auto plain = open_unless_erased(store_, **v, inner);
    if (plain)
      fn(*plain);
    return !inner;
  });
  return err ? err : inner;
}

void alert_table::put_silence(write_batch& batch, std::string_view patient,
                              std::string_view metric, std::string_view record) {
  auto shard = models::shard_of(patient, store_.shards());
  batch.put(column::alerts, key_codec::alert_key('s', shard, patient, metric), record);
}

void alert_table::erase_silence(write_batch& batch, std::string_view patient,
                                std::string_view metric) {
  auto shard = models::shard_of(patient, store_.shards());
  batch.erase(column::alerts, key_codec::alert_key('s', shard, patient, metric));
}

caf::error alert_table::scan_silences(const std::function<void(std::string_view)>& fn,
                                      std::optional<uint32_t> shard) {
  auto [begin, end] = kind_range('s', shard);
  return store_.scan(column::alerts, begin, end, [&](std::string_view, std::string_view value) {
    fn(value);
    return true;
  });
}

}  // namespace healthtwin::storage
