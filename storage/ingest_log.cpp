#include "storage/ingest_log.hpp"

#include "storage/key_codec.hpp"

namespace healthtwin::storage {

namespace {
constexpr std::string_view checkpoint_key = "checkpoint";
}

void ingest_log::append(write_batch& batch, uint64_t position, std::string_view record) {
  batch.put(column::log, key_codec::log_key(position), record);
}

caf::expected<uint64_t> ingest_log::checkpoint() {
  auto v = store_.get(column::meta, checkpoint_key);
  if (!v)
    return v.error();
  if (!*v)
    return uint64_t{0};
  if ((*v)->size() != 8)
    return caf::make_error(errc::corruption, std::string{"checkpoint record has a bad size"});
  return key_codec::get_u64(**v);
}

caf::expected<uint64_t> ingest_log::last_position() {
  auto cp = checkpoint();
  if (!cp)
    return cp.error();
  auto last = store_.last_key(column::log);
  if (!last)
    return last.error();
  uint64_t pos = *last ? key_codec::get_u64(**last) : 0;
  return std::max(pos, *cp);
}

void ingest_log::advance_checkpoint(write_batch& batch, uint64_t checkpoint) {
  batch.put(column::meta, checkpoint_key, key_codec::log_key(checkpoint));
  batch.erase_range(column::log, key_codec::log_key(0), key_codec::log_key(checkpoint + 1));
}

caf::error ingest_log::reclaim(uint64_t checkpoint) {
  return store_.reclaim(column::log, key_codec::log_key(0), key_codec::log_key(checkpoint + 1));
}

caf::error ingest_log::replay(
    uint64_t from, const std::function<bool(uint64_t, std::string_view)>& fn) {
  return store_.scan(column::log, key_codec::log_key(from), {},
                     [&](std::string_view key, std::string_view value) {
                       return fn(key_codec::get_u64(key), value);
                     });
}

}  // namespace healthtwin::storage
