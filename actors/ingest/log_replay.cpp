#include "actors/ingest/log_replay.hpp"

#include "actors/ingest/log_codec.hpp"
#include "healthtwin/internal/records.pb.h"
#include "storage/ingest_log.hpp"
#include "storage/key_codec.hpp"

namespace healthtwin::actors {

caf::expected<replay_counts> replay_log(storage::ingest_log& log, uint64_t checkpoint, device_directory& dir,
                                        const shard_fence& fence, batch_dispatch& dispatch,
                                        const std::function<void()>& throttle) {
  caf::error failure;
  replay_counts counts;
  internal::LogRecord rec;  // parsed into again and again: its arrays are reused
  auto err = log.replay(checkpoint + 1, [&](uint64_t pos, std::string_view bytes) {
    auto b = std::make_shared<committed_batch>();
    if ((failure = decode_log_record(pos, bytes, rec, *b)))
      return false;
    for (auto& e : b->entries) {
      counts.readings += e.readings.size();
      bool owned = fence.owns(fence.shard_of(e.patient_only ? e.patient : e.device));
      auto entry = e.clinician || !owned ? caf::expected<directory_entry*>{nullptr}
                   : e.patient_only      ? dir.lookup_part(e.patient, e.device)
                                         : caf::expected<directory_entry*>{dir.lookup_for_replay(e.device)};
      if (!entry) {
        failure = entry.error();
        return false;
      }
      if (!*entry)
        continue;
      dir.mark_dirty(e.patient_only ? storage::key_codec::part_window_name(e.patient, e.device) : e.device, *entry);
      if (e.sequence_reset) {  // what came before is forgotten, stored or replayed
        (*entry)->window = models::sequence_window{};
        (*entry)->stored_superseded = !(*entry)->loaded;
      }
      for (auto& r : e.readings)
        (*entry)->window.admit(r.sequence);  // union with the stored window
    }
    dispatch.dispatch_replayed(b);
    ++counts.records;
    throttle();
    return true;
  });
  if (err)
    return err;
  if (failure)
    return failure;
  dispatch.send_replayed();
  return counts;
}

}  // namespace healthtwin::actors
