#include "actors/ingest/registry_rules.hpp"

#include <algorithm>

#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "storage/erasure.hpp"

namespace healthtwin::actors {

registry_rules::registry_rules(storage::store& store, storage::registry& registry,
                               std::function<caf::error(std::string_view)> closed)
  : store_(store), registry_(registry), closed_(std::move(closed)), batch_(store) {}

registry_result registry_rules::run(registry_command& command) {
  return std::visit([this](auto& c) { return run(c); }, command);
}

caf::expected<std::optional<storage::patient_record>> registry_rules::get_patient(const std::string& name) {
  if (auto i = patients_.find(name); i != patients_.end())
    return std::optional<storage::patient_record>{i->second};
  return registry_.get_patient(name);
}

caf::expected<std::optional<storage::device_record>> registry_rules::get_device(const std::string& name) {
  if (auto i = devices_.find(name); i != devices_.end())
    return std::optional<storage::device_record>{i->second};
  return registry_.get_device(name);
}

void registry_rules::put(const storage::patient_record& p) {
  registry_.put(batch_, p);
  patients_[p.name] = p;
}

void registry_rules::put(const storage::device_record& d) {
  registry_.put(batch_, d);
  devices_[d.name] = d;
}

registry_result registry_rules::failed(caf::error e) {
  registry_result out;
  out.error = std::move(e);
  return out;
}

registry_result registry_rules::run(create_patient& c) {
  if (auto err = closed_(c.patient.name))
    return failed(err);
  auto existing = get_patient(c.patient.name);
  if (!existing)
    return failed(existing.error());
  if (*existing)
    return failed(caf::make_error(ingest_errc::already_exists));
  if (std::count(erased_.begin(), erased_.end(), c.patient.name) > 0 ||
      store_.patient_erased(c.patient.name))
    return failed(caf::make_error(ingest_errc::failed_precondition,
                                  std::string{"this patient id was erased and cannot be reused"}));
  c.patient.devices.clear();
  c.patient.create_time_ms = models::wall_clock_ms();
  c.patient.version = 1;
  // Its data key commits with the record: no key write later, when the
  // twin first seals a value.
  if (auto err = store_.add_patient_key(batch_, c.patient.name))
    return failed(err);
  put(c.patient);
  registry_result out;
  out.patient = std::move(c.patient);
  return out;
}

registry_result registry_rules::run(create_device& c) {
  if (auto err = closed_(c.device.name))
    return failed(err);
  auto existing = get_device(c.device.name);
  if (!existing)
    return failed(existing.error());
  if (*existing)
    return failed(caf::make_error(ingest_errc::already_exists));
  c.device.patient.clear();
  c.device.create_time_ms = models::wall_clock_ms();
  put(c.device);
  registry_result out;
  out.device = std::move(c.device);
  return out;
}

registry_result registry_rules::run(assign_device& c) {
  if (auto err = closed_(c.device))
    return failed(err);
  auto dev = get_device(c.device);
  if (!dev)
    return failed(dev.error());
  if (!*dev)
    return failed(caf::make_error(ingest_errc::not_found, std::string{"device"}));
  auto d = std::move(**dev);
  registry_result out;
  if (d.patient == c.patient) {  // idempotent
    out.device = std::move(d);
    return out;
  }
  if (!c.patient.empty() && d.decommission_time_ms != 0)
    return failed(caf::make_error(ingest_errc::failed_precondition,
                                  std::string{"the device was decommissioned"}));
  if (!c.patient.empty() && !d.patient.empty())
    return failed(caf::make_error(ingest_errc::failed_precondition,
                                  std::string{"device is attached to another patient; "
                                              "unassign it first"}));
  if (!c.patient.empty() && models::tenant_of(c.patient) != models::tenant_of(c.device))
    return failed(caf::make_error(ingest_errc::invalid_argument,
                                  std::string{"device and patient belong to different tenants"}));
  // The patient gaining (assign) or losing (unassign) the device; when
  // another member owns it, that member linked or unlinked it already.
  auto& changed = c.patient.empty() ? d.patient : c.patient;
  if (c.patient_elsewhere) {
    d.patient = c.patient;
    put(d);
    out.device = std::move(d);
    return out;
  }
  if (auto err = closed_(changed))
    return failed(err);
  auto pat = get_patient(changed);
  if (!pat)
    return failed(pat.error());
  if (!*pat && !c.patient.empty())
    return failed(caf::make_error(ingest_errc::not_found, std::string{"patient"}));
  if (*pat) {
    auto& list = (*pat)->devices;
    if (c.patient.empty())
      list.erase(std::remove(list.begin(), list.end(), c.device), list.end());
    else
      list.push_back(c.device);
    ++(*pat)->version;
    put(**pat);
  }
  notify_.push_back(changed);
  d.patient = c.patient;
  put(d);
  out.device = std::move(d);
  return out;
}

registry_result registry_rules::run(link_device& c) {
  if (auto err = closed_(c.patient))
    return failed(err);
  auto pat = get_patient(c.patient);
  if (!pat)
    return failed(pat.error());
  if (!*pat)
    return failed(caf::make_error(ingest_errc::not_found, std::string{"patient"}));
  if (models::tenant_of(c.patient) != models::tenant_of(c.device))
    return failed(caf::make_error(ingest_errc::invalid_argument,
                                  std::string{"device and patient belong to different tenants"}));
  auto& list = (*pat)->devices;
  auto listed = std::find(list.begin(), list.end(), c.device) != list.end();
  registry_result out;
  if (listed != c.attach) {  // else: already so (a retry)
    if (c.attach)
      list.push_back(c.device);
    else
      list.erase(std::remove(list.begin(), list.end(), c.device), list.end());
    ++(*pat)->version;
    put(**pat);
    notify_.push_back(c.patient);
  }
  out.patient = std::move(**pat);
  return out;
}

registry_result registry_rules::run(update_patient& c) {
  if (auto err = closed_(c.fields.name))
    return failed(err);
  auto existing = get_patient(c.fields.name);
  if (!existing)
    return failed(existing.error());
  if (!*existing)
    return failed(caf::make_error(ingest_errc::not_found, std::string{"patient"}));
  auto p = std::move(**existing);
  if (c.expected_version != 0 && c.expected_version != p.version)
    return failed(caf::make_error(ingest_errc::aborted,
                                  std::string{"the patient changed since it was read (etag)"}));
  for (auto& field : c.mask) {
    if (field == "ward")
      p.ward = c.fields.ward;
    else if (field == "bed")
      p.bed = c.fields.bed;
    else if (field == "home_region")
      p.home_region = c.fields.home_region;
    else if (field == "spo2_scale2")
      p.spo2_scale2 = c.fields.spo2_scale2;
  }
  ++p.version;
  put(p);
  notify_.push_back(p.name);  // the twin reloads its registry record
  registry_result out;
  out.patient = std::move(p);
  return out;
}

registry_result registry_rules::run(decommission_device& c) {
  if (auto err = closed_(c.device))
    return failed(err);
  auto dev = get_device(c.device);
  if (!dev)
    return failed(dev.error());
  if (!*dev)
    return failed(caf::make_error(ingest_errc::not_found, std::string{"device"}));
  if ((*dev)->decommission_time_ms != 0) {  // idempotent
    registry_result out;
    out.device = std::move(**dev);
    return out;
  }
  if (!(*dev)->patient.empty()) {  // detach first, as UnassignDevice does
    assign_device detach{c.device, {}, c.patient_elsewhere};
    auto r = run(detach);
    if (r.error)
      return r;
    *dev = std::move(r.device);
  }
  auto d = std::move(**dev);
  d.decommission_time_ms = models::wall_clock_ms();
  put(d);
  registry_result out;
  out.device = std::move(d);
  return out;
}

// The device of a shadow change: found and in service.
caf::expected<storage::device_record> registry_rules::device_in_service(const std::string& name) {
  if (auto err = closed_(name))
    return err;
  auto dev = get_device(name);
  if (!dev)
    return dev.error();
  if (!*dev)
    return caf::make_error(ingest_errc::not_found, std::string{"device"});
  if ((*dev)->decommission_time_ms != 0)
    return caf::make_error(ingest_errc::failed_precondition,
                           std::string{"the device was decommissioned"});
  return std::move(**dev);
}

registry_result registry_rules::run(update_desired_config& c) {
  auto d = device_in_service(c.device);
  if (!d)
    return failed(d.error());
  if (c.expected_version && *c.expected_version != d->desired.version)
    return failed(caf::make_error(ingest_errc::aborted,
                                  std::string{"the desired configuration changed since it was read (version " +
                                              std::to_string(d->desired.version) + ")"}));
  auto version = d->desired.version + 1;
  d->desired = std::move(c.desired);
  d->desired.version = version;
  d->desired.update_time_ms = models::wall_clock_ms();
  put(*d);
  registry_result out;
  out.device = std::move(*d);
  return out;
}

registry_result registry_rules::run(report_device_state& c) {
  auto d = device_in_service(c.device);
  if (!d)
    return failed(d.error());
  d->reported = std::move(c.reported);
  d->reported.update_time_ms = models::wall_clock_ms();
  put(*d);
  registry_result out;
  out.device = std::move(*d);
  return out;
}

registry_result registry_rules::run(erase_patient& c) {
  auto existing = get_patient(c.patient);
  if (!existing)
    return failed(existing.error());
  if (!*existing)
    return failed(caf::make_error(ingest_errc::not_found, std::string{"patient"}));
  // A move holds the fence of the patient's shard itself.
  auto fenced_by_move = [&](const std::string& name) {
    return c.moved_away && models::shard_of(name, store_.shards()) == models::shard_of(c.patient, store_.shards());
  };
  if (!fenced_by_move(c.patient))
    if (auto err = closed_(c.patient))
      return failed(err);
  for (auto& device : (*existing)->devices) {  // its devices here must take the detach
    auto d = get_device(device);
    if (!d)
      return failed(d.error());
    if (*d && !fenced_by_move(device))
      if (auto err = closed_(device))
        return failed(err);
  }
  // The key first (synced): from here on no value of the patient can be
  // read or written. Should the commit below fail, a retry finds the
  // patient still registered and completes the erasure.
  if (auto err = store_.destroy_patient_key(c.patient))
    return failed(err);
  for (auto& device : (*existing)->devices) {
    auto d = get_device(device);
    if (!d)
      return failed(d.error());
    if (*d && (*d)->patient == c.patient) {
      (*d)->patient.clear();
      put(**d);
    }
  }
  registry_.erase_patient(batch_, c.patient);
  storage::note_purge_owed(batch_, store_, c.patient);
  patients_.erase(c.patient);
  erased_.push_back(c.patient);
  registry_result out;
  out.patient = std::move(**existing);
  return out;
}

registry_result registry_rules::run(release_devices& c) {
  registry_result out;
  for (auto& name : c.devices)
    if (auto err = closed_(name))
      return failed(err);
  for (auto& name : c.devices) {
    auto d = get_device(name);
    if (!d)
      return failed(d.error());
    if (*d && (*d)->patient == c.patient) {  // else: released before, or moved on
      (*d)->patient.clear();
      put(**d);
    }
  }
  // Owed until purged, so a crash before the purge still purges at the
  // next start (purges_owed).
  storage::note_purge_owed(batch_, store_, c.patient);
  released_.push_back(c.patient);
  return out;
}

// Never reached: process() commits a reset on its own (add_reset).
registry_result registry_rules::run(reset_device_sequence&) {
  return failed(caf::make_error(ingest_errc::invalid_argument,
                                std::string{"a sequence reset is a commit of its own"}));
}

}  // namespace healthtwin::actors
