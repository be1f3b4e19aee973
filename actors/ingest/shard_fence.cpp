#include "actors/ingest/shard_fence.hpp"

#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/models/twin_name.hpp"

namespace healthtwin::actors {

uint32_t shard_fence::shard_of(std::string_view name) const {
  return models::shard_of(name, shards());
}

std::string shard_fence::why_closed(uint32_t shard) const {
  return "shard " + std::to_string(shard) +
         (fenced_[shard] ? " is being handed to another member" : " belongs to another member now");
}

caf::error shard_fence::closed(std::string_view name) const {
  auto s = shard_of(name);
  if (open(s))
    return caf::none;
  return caf::make_error(ingest_errc::moving, why_closed(s));
}

std::vector<bool> shard_fence::mask(const std::vector<uint32_t>& of) const {
  std::vector<bool> in(fenced_.size(), false);
  for (auto s : of)
    in[s] = true;
  return in;
}

}  // namespace healthtwin::actors
