#include "storage/series_table.hpp"

#include "actors/models/twin_name.hpp"
#include "storage/key_codec.hpp"

namespace healthtwin::storage {

caf::error series_table::put_chunk(std::string_view patient, uint8_t metric, uint32_t chunk_no,
                                   std::string_view chunk) {
  auto sealed = store_.seal(patient, chunk);
  if (!sealed)
    return sealed.error();
  write_batch b{store_};
  auto shard = models::shard_of(patient, store_.shards());
  b.put(column::series, key_codec::series_key(shard, patient, metric, chunk_no), *sealed);
  return store_.write(b, false);
}

caf::error series_table::read(std::string_view patient, uint8_t metric, int64_t from_ms,
                              int64_t to_ms, uint32_t before_chunk, std::vector<sample>& out) {
  auto shard = models::shard_of(patient, store_.shards());
  auto begin = key_codec::series_key(shard, patient, metric, 0);
  auto end = key_codec::series_key(shard, patient, metric, before_chunk);
  caf::error bad;
  auto err = store_.scan(column::series, begin, end, [&](std::string_view key, std::string_view stored) {
    auto plain = store_.unseal(stored);
    if (!plain) {
      bad = plain.error();
      return false;
    }
    std::string_view v = *plain;
    chunk_header h;
    if (!read_chunk_header(v, h)) {
      bad = caf::make_error(errc::invalid_record, "series chunk " + std::to_string(
                                                      key_codec::get_u32(key.substr(key.size() - 4))));
      return false;
    }
    if (h.max_time_ms < from_ms || h.min_time_ms >= to_ms)
      return true;
    bool ok = decode_chunk(v, [&](sample s) {
      if (s.time_ms >= from_ms && s.time_ms < to_ms)
        out.push_back(s);
    });
    if (!ok) {
      bad = caf::make_error(errc::invalid_record, std::string{"series chunk does not decode"});
      return false;
    }
    return true;
  });
  return err ? err : bad;
}

}  // namespace healthtwin::storage
