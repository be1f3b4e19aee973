#include "actors/ingest/device_directory.hpp"

#include <algorithm>
#include <array>

#include "healthtwin/internal/records.pb.h"
#include "storage/errc.hpp"
#include "storage/key_codec.hpp"

namespace healthtwin::actors {

caf::expected<directory_entry*> device_directory::lookup(const std::string& name) {
  auto i = entries_.find(name);
  if (i != entries_.end() && i->second.loaded)
    return &i->second;
  auto rec = registry_.get_device(name);
  if (!rec)
    return rec.error();
  if (!*rec)
    return static_cast<directory_entry*>(nullptr);
  if (i == entries_.end()) {
    directory_entry e;
    if (auto err = load_window(name, e.window))
      return err;
    i = entries_.emplace(name, std::move(e)).first;
  } else if (!i->second.stored_superseded) {
    // Made by a replay: merge the stored window in (the union is exact,
    // see sequence_window::merge).
    models::sequence_window stored;
    if (auto err = load_window(name, stored))
      return err;
    stored.merge(i->second.window);
    i->second.window = stored;
  }
  auto& e = i->second;
  e.loaded = true;
  e.type = (*rec)->type;
  e.patient = (*rec)->patient;
  e.decommissioned = (*rec)->decommission_time_ms != 0;
  return &e;
}

directory_entry* device_directory::lookup_for_replay(const std::string& name) {
  auto i = entries_.find(name);
  if (i == entries_.end()) {
    directory_entry e;
    e.loaded = false;
    i = entries_.emplace(name, std::move(e)).first;
  }
  return &i->second;
}

caf::expected<directory_entry*> device_directory::lookup_part(const std::string& patient, const std::string& device) {
  auto name = storage::key_codec::part_window_name(patient, device);
  auto i = entries_.find(name);
  if (i != entries_.end())
    return &i->second;
  directory_entry e;
  e.patient = patient;
  if (auto err = load_window(name, e.window))
    return err;
  return &entries_.emplace(std::move(name), std::move(e)).first->second;
}

directory_entry* device_directory::find(const std::string& name) {
  auto i = entries_.find(name);
  return i == entries_.end() ? nullptr : &i->second;
}

caf::error device_directory::load_window(const std::string& name, models::sequence_window& out) const {
  auto shard = storage::key_codec::window_shard(name, store_.shards());
  auto stored = store_.get(storage::column::twins, storage::key_codec::window_key(shard, name));
  if (!stored)
    return stored.error();
  if (*stored) {
    internal::SequenceWindowState w;
    if (!w.ParseFromString(**stored))
      return caf::make_error(storage::errc::invalid_record,
                             std::string{"device sequence window does not parse"});
    std::array<uint64_t, 4> bits{};
    for (int k = 0; k < w.seen_size() && k < 4; ++k)
      bits[static_cast<size_t>(k)] = w.seen(k);
    out = models::sequence_window::restore(w.highest(), bits);
  }
  return caf::none;
}

void device_directory::mark_dirty(const std::string& name, directory_entry* e) {
  if (e->window_dirty)
    return;
  e->window_dirty = true;
  dirty_.emplace_back(&entries_.find(name)->first, e);
}

std::vector<window_copy> device_directory::take_dirty(const std::vector<bool>* in) {
  std::vector<window_copy> taken;
  taken.reserve(in ? 0 : dirty_.size());
  auto nshards = store_.shards();
  auto kept = std::stable_partition(dirty_.begin(), dirty_.end(), [&](auto& w) {
    return in && !(*in)[storage::key_codec::window_shard(*w.first, nshards)];
  });
  for (auto i = kept; i != dirty_.end(); ++i) {
    i->second->window_dirty = false;
    taken.push_back(window_copy{*i->first, i->second->window, !i->second->loaded, i->second->stored_superseded});
  }
  dirty_.erase(kept, dirty_.end());
  return taken;
}

void device_directory::restore_dirty(const std::vector<window_copy>& windows) {
  for (auto& w : windows)
    if (auto* e = find(w.name))  // else: handed over since
      mark_dirty(w.name, e);
}

void device_directory::checkpoint_written(uint64_t stamp, std::chrono::steady_clock::time_point now) {
  written_.emplace_back(now, stamp);
}

size_t device_directory::evict_cold(std::chrono::steady_clock::time_point now,
                                    std::chrono::milliseconds idle, size_t buckets) {
  while (!written_.empty() && written_.front().first <= now - idle) {
    cold_before_ = written_.front().second;
    written_.pop_front();
  }
  if (cold_before_ == 0 || entries_.empty())
    return 0;
  cold_.clear();
  auto count = entries_.bucket_count();
  for (size_t n = 0; n < buckets && n < count; ++n) {
    sweep_bucket_ = (sweep_bucket_ + 1) % count;
    for (auto i = entries_.begin(sweep_bucket_); i != entries_.end(sweep_bucket_); ++i)
      if (!i->second.window_dirty && i->second.commit_stamp < cold_before_)
        cold_.push_back(i->first);
  }
  for (auto& name : cold_)
    entries_.erase(name);
  return cold_.size();
}

void device_directory::forget_shards(const std::vector<bool>& in) {
  auto nshards = store_.shards();
  dirty_.erase(std::remove_if(dirty_.begin(), dirty_.end(),
                              [&](auto& w) { return in[storage::key_codec::window_shard(*w.first, nshards)]; }),
               dirty_.end());
  for (auto i = entries_.begin(); i != entries_.end();)
    i = in[storage::key_codec::window_shard(i->first, nshards)] ? entries_.erase(i) : std::next(i);
}

}  // namespace healthtwin::actors
