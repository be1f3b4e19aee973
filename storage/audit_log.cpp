#include "storage/audit_log.hpp"

#include <cstring>
#include <future>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"

namespace healthtwin::storage {

namespace {

using digest = std::array<uint8_t, 32>;

// SHA-256 of the previous link's hash followed by the entry's bytes.
digest chain_hash(const digest& prev, std::string_view entry) {
  digest out{};
  unsigned len = 0;
  auto* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, prev.data(), prev.size());
  EVP_DigestUpdate(ctx, entry.data(), entry.size());
  EVP_DigestFinal_ex(ctx, out.data(), &len);
  EVP_MD_CTX_free(ctx);
  return out;
}

std::string audit_key(uint64_t sequence) {
  std::string k{"e"};
  key_codec::put_u64(k, sequence);
  return k;
}

// The stored record: the entry (serialised once, hashed as stored) and the
// link hash.
bool split(std::string_view value, internal::AuditLink& link) {
  return link.ParseFromArray(value.data(), static_cast<int>(value.size())) &&
         link.hash().size() == 32;
}

}  // namespace

audit_log::~audit_log() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable())
    writer_.join();
}

caf::error audit_log::open() {
  std::lock_guard<std::mutex> guard{mtx_};
  auto last = store_.last_key(column::audit);
  if (!last)
    return last.error();
  if (*last) {
    auto value = store_.get(column::audit, **last);
    if (!value)
      return value.error();
    internal::AuditLink link;
    if (!*value || (*last)->size() != 9 || !split(**value, link))
      return caf::make_error(errc::invalid_record, std::string{"audit log head does not parse"});
    last_ = key_codec::get_u64(std::string_view{**last}.substr(1));
    std::memcpy(last_hash_.data(), link.hash().data(), 32);
  }
  writer_ = std::thread{[this] { run_writer(); }};
  return caf::none;
}

caf::error audit_log::append(const audit_entry& e) {
  std::promise<caf::error> written;
  auto result = written.get_future();
  append_async(e, [&written](const caf::error& err) { written.set_value(err); });
  return result.get();
}

void audit_log::append_async(const audit_entry& e, done_callback done) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!writer_.joinable() || stopping_) {
      done(caf::make_error(errc::io_error, std::string{"the audit log is not open"}));
      return;
    }
    queue_.push_back({e, std::move(done)});
  }
  wake_.notify_one();
}

void audit_log::run_writer() {
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty())
      return;  // stopping, and everything queued is written
    std::deque<queued> group;
    group.swap(queue_);
    lock.unlock();
    auto err = write_group(group);
    for (auto& q : group)
      q.done(err);
    lock.lock();
  }
}

// Chains the group after the head and writes it with one synced write; the
// head advances only if the write succeeded.
caf::error audit_log::write_group(std::deque<queued>& group) {
  uint64_t seq;
  digest hash;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    seq = last_;
    hash = last_hash_;
  }
  write_batch b{store_};
  internal::AuditEntry entry;
  internal::AuditLink link;
  for (auto& q : group) {
    entry.set_principal(q.entry.principal);
    entry.set_resource(stored_resource(store_, q.entry.resource));
    entry.set_action(q.entry.action);
    entry.set_outcome(q.entry.outcome);
    entry.set_time_ms(q.entry.time_ms);
    entry.set_sequence(++seq);
    link.set_entry(entry.SerializeAsString());
    hash = chain_hash(hash, link.entry());
    link.set_hash(std::string(reinterpret_cast<const char*>(hash.data()), hash.size()));
    b.put(column::audit, audit_key(seq), link.SerializeAsString());
  }
  if (auto err = store_.write(b, true)) {
    spdlog::error("audit: writing {} entries failed: {}", group.size(), describe(err));
    return err;
  }
  std::lock_guard<std::mutex> guard{mtx_};
  last_ = seq;
  last_hash_ = hash;
  ++commits_;
  return caf::none;
}

uint64_t audit_log::head() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return last_;
}

uint64_t audit_log::commits() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return commits_;
}

std::string audit_log::stored_resource(store& s, std::string_view resource) {
  // tenants/{t}/patients/{p}[/...] or tenants/{t}/devices/{d}[/...]
  auto tenant_end = resource.find('/', 8);
  if (resource.substr(0, 8) != "tenants/" || tenant_end == std::string_view::npos)
    return std::string{resource};
  size_t id_start = 0;
  for (std::string_view kind : {"/patients/", "/devices/"})
    if (resource.substr(tenant_end, kind.size()) == kind)
      id_start = tenant_end + kind.size();
  if (id_start == 0)
    return std::string{resource};
  auto id_end = std::min(resource.find('/', id_start), resource.size());
  if (id_end == id_start || resource[id_start] == '~')
    return std::string{resource};
  return std::string{resource.substr(0, id_start)} + "~" +
         s.pseudonym(resource.substr(0, id_end)) + std::string{resource.substr(id_end)};
}

caf::error audit_log::read(store& s, const std::function<bool(uint64_t, const audit_entry&)>& fn) {
  return s.scan(column::audit, {}, {}, [&](std::string_view key, std::string_view value) {
    internal::AuditLink link;
    internal::AuditEntry entry;
    if (key.size() != 9 || !split(value, link) || !entry.ParseFromString(link.entry()))
      return true;
    audit_entry e{entry.principal(), entry.resource(), entry.action(), entry.outcome(), entry.time_ms()};
    return fn(key_codec::get_u64(key.substr(1)), e);
  });
}

caf::expected<audit_verdict> audit_log::verify(store& s) {
  audit_verdict v;
  digest prev{};
  uint64_t expected = 1;
  auto broken = [&](uint64_t seq, std::string why) {
    v.first_broken = seq;
    v.reason = std::move(why);
    return false;
  };
  auto err = s.scan(column::audit, {}, {}, [&](std::string_view key, std::string_view value) {
    if (key.size() != 9 || key[0] != 'e')
      return broken(expected, "unexpected key in the audit log");
    auto seq = key_codec::get_u64(key.substr(1));
    if (seq != expected)
      return broken(expected, "entry missing (next stored is " + std::to_string(seq) + ")");
    internal::AuditLink link;
    if (!split(value, link))
      return broken(seq, "entry does not parse");
    internal::AuditEntry entry;
    if (!entry.ParseFromString(link.entry()) || entry.sequence() != seq)
      return broken(seq, "entry content does not match its position");
    auto h = chain_hash(prev, link.entry());
    if (std::memcmp(h.data(), link.hash().data(), 32) != 0)
      return broken(seq, "hash does not match the entry and the previous link");
    prev = h;
    ++v.entries;
    ++expected;
    return true;
  });
  if (err)
    return err;
  return v;
}

}  // namespace healthtwin::storage
