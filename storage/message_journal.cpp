#include "storage/message_journal.hpp"

#include <cstring>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/errc.hpp"

namespace healthtwin::storage {

namespace {

// Keys: 'm' + message key -> record; 't' + big-endian received ms + message
// key -> "" (for forget_before); 'd' + device id -> next sequence (8 bytes).

void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i)
    out += static_cast<char>((v >> (i * 8)) & 0xff);
}

bool get_u64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8)
    return false;
  v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<uint8_t>(in[static_cast<size_t>(i)]);
  in.remove_prefix(8);
  return true;
}

void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out += s;
}

bool get_str(std::string_view& in, std::string& s) {
  uint64_t n = 0;
  if (!get_u64(in, n) || in.size() < n)
    return false;
  s.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

std::string encode(const journal_record& r) {
  std::string out;
  out += static_cast<char>(r.acked ? 1 : 0);
  put_u64(out, static_cast<uint64_t>(r.received_ms));
  put_str(out, r.digest);
  put_u64(out, r.first_sequence.size());
  for (auto& [device, seq] : r.first_sequence) {
    put_str(out, device);
    put_u64(out, seq);
  }
  return out;
}

std::optional<journal_record> decode(std::string_view in) {
  journal_record r;
  if (in.empty())
    return std::nullopt;
  r.acked = in[0] == 1;
  in.remove_prefix(1);
  uint64_t t = 0, n = 0;
  if (!get_u64(in, t) || !get_str(in, r.digest) || !get_u64(in, n) || n > 100'000)
    return std::nullopt;
  r.received_ms = static_cast<int64_t>(t);
  for (uint64_t i = 0; i < n; ++i) {
    std::string device;
    uint64_t seq = 0;
    if (!get_str(in, device) || !get_u64(in, seq))
      return std::nullopt;
    r.first_sequence.emplace_back(std::move(device), seq);
  }
  return r;
}

std::string time_key(int64_t ms, std::string_view key) {
  std::string k = "t";
  put_u64(k, static_cast<uint64_t>(ms));
  k += key;
  return k;
}

}  // namespace

struct message_journal::impl {
  std::unique_ptr<rocksdb::DB> db;
};

message_journal::message_journal(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
message_journal::~message_journal() = default;

caf::expected<std::unique_ptr<message_journal>> message_journal::open(const std::filesystem::path& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_open_files = 64;
  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(options, dir.string(), &db);
  if (!st.ok())
    return caf::make_error(errc::io_error, "cannot open the message journal in " + dir.string() + ": " + st.ToString());
  auto p = std::make_unique<impl>();
  p->db.reset(db);
  return std::unique_ptr<message_journal>{new message_journal{std::move(p)}};
}

std::optional<journal_record> message_journal::find(std::string_view key) {
  std::string value;
  auto st = impl_->db->Get(rocksdb::ReadOptions{}, "m" + std::string{key}, &value);
  if (!st.ok())
    return std::nullopt;
  return decode(value);
}

caf::expected<journal_record> message_journal::assign(std::string_view key, std::string digest,
                                                      const std::vector<std::pair<std::string, uint32_t>>& counts,
                                                      int64_t now_ms) {
  std::lock_guard<std::mutex> guard{mtx_};
  journal_record r;
  r.digest = std::move(digest);
  r.received_ms = now_ms;
  rocksdb::WriteBatch batch;
  for (auto& [device, count] : counts) {
    std::string value;
    uint64_t next = static_cast<uint64_t>(std::max<int64_t>(now_ms, 1));
    auto st = impl_->db->Get(rocksdb::ReadOptions{}, "d" + device, &value);
    if (st.ok()) {
      std::string_view in{value};
      uint64_t stored = 0;
      if (!get_u64(in, stored))
        return caf::make_error(errc::invalid_record, "a device counter in the message journal does not parse");
      next = stored;
    } else if (!st.IsNotFound()) {
      return caf::make_error(errc::io_error, "message journal: " + st.ToString());
    }
    r.first_sequence.emplace_back(device, next);
    std::string counter;
    put_u64(counter, next + count);
    batch.Put("d" + device, counter);
  }
  batch.Put("m" + std::string{key}, encode(r));
  batch.Put(time_key(now_ms, key), "");
  rocksdb::WriteOptions sync;
  sync.sync = true;
  auto st = impl_->db->Write(sync, &batch);
  if (!st.ok())
    return caf::make_error(st.IsNoSpace() ? errc::no_space : errc::io_error, "message journal: " + st.ToString());
  return r;
}

caf::error message_journal::mark_acked(std::string_view key) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto r = find(key);
  if (!r)
    return caf::make_error(errc::invalid_record, std::string{"no such message in the journal"});
  r->acked = true;
  auto st = impl_->db->Put(rocksdb::WriteOptions{}, "m" + std::string{key}, encode(*r));
  if (!st.ok())
    return caf::make_error(errc::io_error, "message journal: " + st.ToString());
  return {};
}

size_t message_journal::forget_before(int64_t ms) {
  std::lock_guard<std::mutex> guard{mtx_};
  std::string end = "t";
  put_u64(end, static_cast<uint64_t>(std::max<int64_t>(ms, 0)));
  rocksdb::WriteBatch batch;
  size_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(rocksdb::ReadOptions{})};
  for (it->Seek("t"); it->Valid() && it->key().compare(end) < 0; it->Next()) {
    auto k = it->key().ToString();
    batch.Delete(k);
    batch.Delete("m" + k.substr(9));
    ++n;
  }
  if (n > 0)
    impl_->db->Write(rocksdb::WriteOptions{}, &batch);
  return n;
}

}  // namespace healthtwin::storage
