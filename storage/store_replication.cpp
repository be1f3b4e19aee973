// A store as one replica of a Raft group (docs/adr/0038): writes go through
// the group; the group's state machine applies them here in its order, with
// the index of the last one applied, so a restart skips what it already has.

#include <spdlog/spdlog.h>

#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/store_impl.hpp"

namespace healthtwin::storage {

namespace {

// In the meta column, beside the node meta record.
constexpr std::string_view replicated_index_key = "replicated-index";


}  // namespace

caf::error load_replicated_index(store::impl& im) {
  std::string value;
  auto st = im.db->Get(rocksdb::ReadOptions{}, im.cf(column::meta),
                       rocksdb::Slice{replicated_index_key.data(), replicated_index_key.size()}, &value);
  if (st.IsNotFound())
    return caf::none;
  if (!st.ok())
    return to_error(st, "read the replicated index");
  if (value.size() != 8)
    return caf::make_error(errc::corruption, std::string{"the replicated index record is not 8 bytes"});
  im.replicated_index.store(key_codec::get_u64(value));
  return caf::none;
}

void store::replicate_through(write_replicator* r) noexcept { impl_->replicator.store(r, std::memory_order_release); }

uint64_t store::replicated_index() const noexcept { return impl_->replicated_index.load(); }

std::optional<std::array<uint8_t, 32>> store::derive_key(std::string_view label) const {
  if (!impl_->key)
    return std::nullopt;
  return impl_->key->derive(label);
}

caf::error store::apply_replicated(uint64_t index, std::string_view batch) {
  if (index <= impl_->replicated_index.load())
    return caf::none;
  // A WriteBatch's representation: a 12-byte header (sequence, count), then
  // its records; RocksDB checks the rest when it applies it.
  if (batch.size() < 12)
    return caf::make_error(errc::corruption, "replicated batch " + std::to_string(index) + " has " +
                                                 std::to_string(batch.size()) + " bytes");
  rocksdb::WriteBatch wb{std::string{batch}};
  std::string idx;
  key_codec::put_u64(idx, index);
  auto st = wb.Put(impl_->cf(column::meta), rocksdb::Slice{replicated_index_key.data(), replicated_index_key.size()},
                   rocksdb::Slice{idx.data(), idx.size()});
  if (!st.ok())
    return caf::make_error(errc::corruption, "replicated batch " + std::to_string(index) + " does not decode");
  impl_->resume_after_failure();
  st = impl_->checked_write(impl_->db->Write(rocksdb::WriteOptions{}, &wb));
  if (!st.ok())
    return to_error(st, "apply replicated batch " + std::to_string(index));
  impl_->replicated_index.store(index);
  return caf::none;
}

}  // namespace healthtwin::storage
