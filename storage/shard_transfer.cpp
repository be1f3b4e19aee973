#include "storage/shard_transfer.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "actors/models/twin_name.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/meta_records.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

struct key_range {
  column col;
  std::string begin;
  std::string end;
};

// Every range keyed by the shard (storage/key_codec.hpp).
std::vector<key_range> shard_ranges(uint32_t shard) {
  std::string begin, end;
  key_codec::put_u16(begin, static_cast<uint16_t>(shard));
  if (shard + 1 <= 0xffff)
    key_codec::put_u16(end, static_cast<uint16_t>(shard + 1));
  else
    end = "\xff\xff\xff";
  std::vector<key_range> out{{column::registry, begin, end},
                             {column::twins, begin, end},
                             {column::series, begin, end}};
  for (char kind : {'a', 'x', 's'})
    out.push_back({column::alerts, kind + begin, kind + end});
  return out;
}

bool in_ranges(const std::vector<key_range>& ranges, const shard_entry& e) {
  for (auto& r : ranges)
    if (r.col == e.col && e.key >= r.begin && e.key < r.end)
      return true;
  return false;
}

// The twins registered in the shard: registry keys are shard(2) kind(1) name.
caf::expected<std::vector<std::string>> owners_of(store& s, const key_range& registry) {
  std::vector<std::string> names;
  auto err = s.scan(column::registry, registry.begin, registry.end, [&](std::string_view key, std::string_view) {
    if (key.size() > 3)
      names.emplace_back(key.substr(3));
    return true;
  });
  if (err)
    return err;
  return names;
}

// "z" + a pseudonym (16 hex digits, patient_keys::pseudonym), no value.
bool erasure_marker(const shard_entry& e) {
  return e.key.size() == 17 && e.value.empty() &&
         std::all_of(e.key.begin() + 1, e.key.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

caf::error bad_entry(size_t i, const std::string& why) {
  return caf::make_error(errc::invalid_record, "shard entry " + std::to_string(i) + ": " + why);
}

// A snapshot as the new owner stores it: at `position` of its own log.
caf::expected<std::string> restarted_snapshot(store& s, std::string_view key, const std::string& stored,
                                              size_t i, uint64_t position) {
  auto kind = static_cast<models::twin_kind>(key[2]);
  std::string name{key.substr(3)};
  if (kind == models::twin_kind::device) {
    internal::DeviceSnapshot d;
    if (!d.ParseFromString(stored))
      return bad_entry(i, "the device snapshot does not parse");
    d.set_applied_lsn(position);
    return d.SerializeAsString();
  }
  auto plain = s.unseal(stored);  // patient snapshots are sealed
  if (!plain)
    return plain.error();
  internal::PatientSnapshot p;
  if (!p.ParseFromString(*plain))
    return bad_entry(i, "the patient snapshot does not parse");
  p.set_applied_lsn(position);
  return s.seal(name, p.SerializeAsString());
}

}  // namespace

caf::error export_shard(store& s, uint32_t shard, size_t chunk_bytes,
                        const std::function<caf::error(std::vector<shard_entry>&&)>& out) {
  auto ranges = shard_ranges(shard);
  std::vector<shard_entry> chunk;
  size_t bytes = 0;
  caf::error failure;
  auto add = [&](column c, std::string_view key, std::string_view value) {
    bytes += key.size() + value.size();
    chunk.push_back({c, std::string{key}, std::string{value}});
  };
  auto flush = [&](bool always) {
    if (chunk.empty() || (!always && bytes < chunk_bytes))
      return true;
    failure = out(std::move(chunk));
    chunk.clear();
    bytes = 0;
    return !failure;
  };
  // Keys first, each owner's pair in one chunk: the importer checks a key
  // ref against its owner's entry.
  auto owners = owners_of(s, ranges[0]);
  if (!owners)
    return owners.error();
  for (auto& name : *owners) {
    auto ref = s.get(column::keys, "n" + name);
    if (!ref)
      return ref.error();
    if (!*ref)
      continue;  // a plaintext directory, or a twin that never sealed anything
    auto wrapped = s.get(column::keys, "k" + **ref);
    if (!wrapped)
      return wrapped.error();
    add(column::keys, "n" + name, **ref);
    if (*wrapped)
      add(column::keys, "k" + **ref, **wrapped);
    if (!flush(false))
      return failure;
  }
  // Then every erasure marker of this member, with every shard: a marker
  // names a pseudonym, not a shard, and a patient erased anywhere in the
  // cluster stays erased wherever its shard goes (they are 17 bytes each).
  // Not one of shard_ranges: drop_shard must keep them.
  ranges.insert(ranges.begin(), key_range{column::keys, "z", "{"});
  for (auto& r : ranges) {
    auto err = s.scan(r.col, r.begin, r.end, [&](std::string_view key, std::string_view value) {
      add(r.col, key, value);
      return flush(false);
    });
    if (err)
      return err;
    if (failure)
      return failure;
  }
  // Last, what else lives in the shard: its firmware rollouts.
  auto meta = meta_records_of_shard(s, shard);
  if (!meta)
    return meta.error();
  for (auto& e : *meta) {
    add(column::meta, e.key, e.value);
    if (!flush(false))
      return failure;
  }
  flush(true);
  return failure;
}

caf::error import_shard_chunk(store& s, uint32_t shard, std::vector<shard_entry>&& chunk,
                              uint64_t log_position, bool sync) {
  auto ranges = shard_ranges(shard);
  // Keys first: the snapshots below are opened and sealed again with them.
  write_batch keys{s};
  std::vector<std::string_view> refs;
  for (size_t i = 0; i < chunk.size(); ++i) {
    auto& e = chunk[i];
    if (e.col != column::keys)
      continue;
    if (e.key.size() > 1 && e.key[0] == 'n') {
      auto owner = models::parse_twin_name(std::string_view{e.key}.substr(1));
      if (!owner || models::shard_of(std::string_view{e.key}.substr(1), s.shards()) != shard)
        return bad_entry(i, "a key entry of a twin not in shard " + std::to_string(shard));
      refs.push_back(e.value);
    } else if (e.key.size() > 1 && e.key[0] == 'k') {
      if (std::find(refs.begin(), refs.end(), std::string_view{e.key}.substr(1)) == refs.end())
        return bad_entry(i, "a wrapped key that no owner of the chunk refers to");
    } else if (e.key[0] == 'z') {
      if (!erasure_marker(e))
        return bad_entry(i, "a malformed erasure marker");
    } else {
      return bad_entry(i, "not an owner's key entry");
    }
    keys.put(e.col, e.key, e.value);
  }
  if (keys.count() > 0)
    if (auto err = s.write(keys, sync))
      return err;
  write_batch rest{s};
  for (size_t i = 0; i < chunk.size(); ++i) {
    auto& e = chunk[i];
    if (e.col == column::keys)
      continue;
    if (e.col == column::meta) {
      if (meta_shard(e.key, s.shards()) != shard)
        return bad_entry(i, "a record not of shard " + std::to_string(shard));
      rest.put(e.col, e.key, e.value);
      continue;
    }
    if (!in_ranges(ranges, e))
      return bad_entry(i, "key not of shard " + std::to_string(shard));
    bool snapshot = e.col == column::twins && e.key.size() > 3 &&
                    (e.key[2] == static_cast<char>(models::twin_kind::device) ||
                     e.key[2] == static_cast<char>(models::twin_kind::patient));
    if (snapshot) {
      auto value = restarted_snapshot(s, e.key, e.value, i, log_position);
      if (!value)
        return value.error();
      rest.put(e.col, e.key, *value);
    } else {
      rest.put(e.col, e.key, e.value);
    }
  }
  return s.write(rest, sync);
}

caf::error drop_shard(store& s, uint32_t shard) {
  auto ranges = shard_ranges(shard);
  auto owners = owners_of(s, ranges[0]);
  if (!owners)
    return owners.error();
  write_batch batch{s};
  for (auto& name : *owners) {
    auto ref = s.get(column::keys, "n" + name);
    if (!ref)
      return ref.error();
    if (!*ref)
      continue;
    batch.erase(column::keys, "k" + **ref);
    batch.erase(column::keys, "n" + name);
  }
  for (auto& r : ranges)
    batch.erase_range(r.col, r.begin, r.end);
  auto meta = meta_records_of_shard(s, shard);
  if (!meta)
    return meta.error();
  for (auto& e : *meta)
    batch.erase(column::meta, e.key);
  return s.write(batch, true);
}

}  // namespace healthtwin::storage
