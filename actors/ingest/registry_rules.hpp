#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "actors/ingest/registry_commands.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

/// The registry's rules, applied to one group of consecutive registry
/// commands that commit together (one write batch, one fsync): who may be
/// created, assigned, updated, decommissioned, erased, and what each
/// changes. Records written earlier in the group are read back from the
/// group itself. It only fills the batch: the sequencer writes it, then
/// updates its directory and notifies the twins of `notify()`.
/// Single-threaded (the sequencer's thread).
class registry_rules {
public:
  /// `closed(name)`: an error when the shard of `name` is being handed to
  /// another member or is another member's now (the command is refused).
  registry_rules(storage::store& store, storage::registry& registry,
                 std::function<caf::error(std::string_view)> closed);

  /// Checks and applies one command to the group.
  registry_result run(registry_command& command);

  storage::write_batch& batch() noexcept { return batch_; }
  /// The records the group changed, by name.
  const std::unordered_map<std::string, storage::patient_record>& patients() const noexcept { return patients_; }
  const std::unordered_map<std::string, storage::device_record>& devices() const noexcept { return devices_; }
  /// Patients whose twins must reload their registry record.
  const std::vector<std::string>& notify() const noexcept { return notify_; }
  /// Patients erased on another member whose names are purged here.
  const std::vector<std::string>& released() const noexcept { return released_; }

private:
  caf::expected<std::optional<storage::patient_record>> get_patient(const std::string& name);
  caf::expected<std::optional<storage::device_record>> get_device(const std::string& name);
  void put(const storage::patient_record& p);
  void put(const storage::device_record& d);
  static registry_result failed(caf::error e);
  caf::expected<storage::device_record> device_in_service(const std::string& name);

  registry_result run(create_patient& c);
  registry_result run(create_device& c);
  registry_result run(assign_device& c);
  registry_result run(link_device& c);
  registry_result run(update_patient& c);
  registry_result run(decommission_device& c);
  registry_result run(update_desired_config& c);
  registry_result run(report_device_state& c);
  registry_result run(erase_patient& c);
  registry_result run(release_devices& c);
  registry_result run(reset_device_sequence& c);

  storage::store& store_;
  storage::registry& registry_;
  std::function<caf::error(std::string_view)> closed_;
  storage::write_batch batch_;
  std::unordered_map<std::string, storage::patient_record> patients_;
  std::unordered_map<std::string, storage::device_record> devices_;
  std::vector<std::string> notify_;
  std::vector<std::string> erased_;    // earlier in this group
  std::vector<std::string> released_;  // patients erased elsewhere: purge their name here
};

}  // namespace healthtwin::actors
