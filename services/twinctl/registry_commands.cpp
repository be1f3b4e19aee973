#include "services/twinctl/registry_commands.hpp"

#include <cstdio>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "healthtwin/v1/clinical.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "services/twinctl/api_commands.hpp"

namespace healthtwin::twinctl {

namespace {

namespace pb = google::protobuf;

void print_patient(const v1::Patient& p, bool json) {
  if (json)
    return print_json(p);
  std::printf("%s  ward %s  bed %s%s%s\n", p.name().c_str(), p.ward().c_str(), p.bed().empty() ? "-" : p.bed().c_str(),
              p.spo2_scale2() ? "  SpO2 scale 2" : "",
              p.home_region().empty() ? "" : ("  home " + p.home_region()).c_str());
  for (auto& d : p.devices())
    std::printf("  device %s\n", d.c_str());
}

void print_device(const v1::Device& d, bool json) {
  if (json)
    return print_json(d);
  std::printf("%s  %s  %s%s\n", d.name().c_str(), short_name(v1::DeviceType_descriptor(), d.type()).c_str(),
              d.patient().empty() ? "unassigned" : ("assigned to " + d.patient()).c_str(),
              d.has_decommission_time() ? "  DECOMMISSIONED" : "");
}

std::optional<uint32_t> acvpu_score(const std::string& letter) {
  static const std::string order = "ACVPU";
  if (letter.size() != 1 || order.find(letter[0]) == std::string::npos)
    return std::nullopt;
  return static_cast<uint32_t>(order.find(letter[0]));
}

}  // namespace

registry_commands::registry_commands(CLI::App& app, const std::function<void(CLI::App*)>& connect) {
  patients_ = app.add_subcommand("patients", "the patient registry (RegistryService)")->require_subcommand(1);
  patient_create_ = patients_->add_subcommand("create", "register a patient");
  patient_get_ = patients_->add_subcommand("get", "a patient's registration and devices");
  patient_update_ = patients_->add_subcommand("update", "move a patient (ward, bed) or change SpO2 scale 2");
  patient_chart_ = patients_->add_subcommand("chart", "chart ACVPU consciousness and supplemental oxygen (NEWS2)");
  patient_erase_ = patients_->add_subcommand("erase", "erase a patient and everything stored of it, for good");
  for (auto* c : {patient_create_, patient_get_, patient_update_, patient_chart_, patient_erase_}) {
    connect(c);
    c->add_option("name", name_, "tenants/T/patients/P")->required();
  }
  patient_create_->add_option("--ward", ward_, "the ward, e.g. ICU-3")->required();
  patient_create_->add_option("--bed", bed_, "the bed");
  patient_create_->add_option("--home-region", home_region_, "the region its data lives in");
  patient_update_->add_option("--ward", ward_, "the new ward");
  patient_update_->add_option("--bed", bed_, "the new bed");
  patient_update_->add_option("--etag", etag_, "refuse if changed since this etag (from patients get --json)");
  for (auto* c : {patient_create_, patient_update_})
    c->add_option("--spo2-scale2", scale2_, "true: score SpO2 on NEWS2 scale 2 (hypercapnic respiratory failure)");
  patient_chart_->add_option("--acvpu", acvpu_, "consciousness: A, C, V, P or U")->check(CLI::IsMember({"A", "C", "V", "P", "U"}));
  patient_chart_->add_option("--oxygen", oxygen_, "supplemental oxygen, L/min (0: room air)")->check(CLI::Range(0.0, 60.0));
  patient_erase_->add_flag("--yes", yes_, "confirm: the erasure cannot be undone")->required();

  locate_ = app.add_subcommand("locate", "the region a patient or device is homed in (RegistryService.LocateTwin)");
  connect(locate_);
  locate_->add_option("name", name_, "tenants/T/patients/P or tenants/T/devices/D")->required();

  devices_ = app.add_subcommand("devices", "the device registry (RegistryService)")->require_subcommand(1);
  device_create_ = devices_->add_subcommand("create", "register a device");
  device_get_ = devices_->add_subcommand("get", "a device's registration, patient and configuration");
  device_assign_ = devices_->add_subcommand("assign", "attach a device to a patient");
  device_unassign_ = devices_->add_subcommand("unassign", "detach a device from its patient");
  device_decommission_ = devices_->add_subcommand("decommission", "retire a device: its readings are refused for good");
  device_reset_ = devices_->add_subcommand("reset-sequence", "accept a device's readings numbered from 1 again");
  for (auto* c : {device_create_, device_get_, device_assign_, device_unassign_, device_decommission_, device_reset_}) {
    connect(c);
    c->add_option("name", name_, "tenants/T/devices/D")->required();
  }
  device_create_->add_option("--type", type_, "BEDSIDE_MONITOR, PULSE_OXIMETER, OBSERVATION_CHART, ...")->required();
  device_assign_->add_option("--patient", patient_, "tenants/T/patients/P")->required();
  device_decommission_->add_flag("--yes", yes_, "confirm: a decommissioned device never reports again")->required();

  settings_ = app.add_subcommand("settings", "a patient's clinical settings (ClinicalService)")->require_subcommand(1);
  settings_get_ = settings_->add_subcommand("get", "alert limits, NEWS2 scale and model settings");
  settings_set_ = settings_->add_subcommand("set", "change settings: the fields given replace the current ones");
  for (auto* c : {settings_get_, settings_set_}) {
    connect(c);
    c->add_option("name", name_, "tenants/T/patients/P")->required();
  }
  settings_set_->add_option("--data", data_, "PatientSettings fields as JSON, e.g. "
                                             "'{\"alertLimits\":[{\"metric\":\"METRIC_HEART_RATE\",\"highAtOrAbove\":140}]}'")
      ->required();
}

int registry_commands::run(const services::channel_settings& node, bool json) const {
  using R = v1::RegistryService::Stub;
  using C = v1::ClinicalService::Stub;
  if (locate_->parsed()) {
    v1::LocateTwinRequest r;
    r.set_name(name_);
    v1::TwinLocation where;
    auto rc = unary(node, "locating the twin", &R::LocateTwin, r, where);
    if (rc == done)
      json ? print_json(where)
           : (void)std::printf("%s  home %s\n", where.name().c_str(),
                               where.home_region().empty() ? "(a node without a region)" : where.home_region().c_str());
    return rc;
  }
  if (patients_->parsed() || settings_->parsed()) {
    auto name = split_name(name_, "patients");
    if (!name)
      return usage;
    v1::Patient p;
    if (patient_create_->parsed()) {
      v1::CreatePatientRequest r;
      r.set_parent(name->first);
      r.set_patient_id(name->second);
      r.mutable_patient()->set_ward(ward_);
      r.mutable_patient()->set_bed(bed_);
      r.mutable_patient()->set_home_region(home_region_);
      r.mutable_patient()->set_spo2_scale2(scale2_.value_or(false));
      auto rc = unary(node, "creating the patient", &R::CreatePatient, r, p);
      if (rc == done)
        print_patient(p, json);
      return rc;
    }
    if (patient_get_->parsed()) {
      v1::GetPatientRequest r;
      r.set_name(name_);
      auto rc = unary(node, "reading the patient", &R::GetPatient, r, p);
      if (rc == done)
        print_patient(p, json);
      return rc;
    }
    if (patient_update_->parsed()) {
      v1::UpdatePatientRequest r;
      r.mutable_patient()->set_name(name_);
      r.mutable_patient()->set_etag(etag_);
      if (patient_update_->count("--ward")) {
        r.mutable_patient()->set_ward(ward_);
        r.mutable_update_mask()->add_paths("ward");
      }
      if (patient_update_->count("--bed")) {
        r.mutable_patient()->set_bed(bed_);
        r.mutable_update_mask()->add_paths("bed");
      }
      if (scale2_) {
        r.mutable_patient()->set_spo2_scale2(*scale2_);
        r.mutable_update_mask()->add_paths("spo2_scale2");
      }
      if (r.update_mask().paths().empty()) {
        std::fprintf(stderr, "twinctl: nothing to change: give --ward, --bed or --spo2-scale2\n");
        return usage;
      }
      auto rc = unary(node, "updating the patient", &R::UpdatePatient, r, p);
      if (rc == done)
        print_patient(p, json);
      return rc;
    }
    if (patient_chart_->parsed()) {
      v1::RecordObservationsRequest r;
      r.set_patient(name_);
      if (!acvpu_.empty())
        r.set_consciousness(*acvpu_score(acvpu_));
      if (oxygen_)
        r.set_oxygen_flow(*oxygen_);
      if (acvpu_.empty() && !oxygen_) {
        std::fprintf(stderr, "twinctl: nothing to chart: give --acvpu, --oxygen or both\n");
        return usage;
      }
      v1::RecordObservationsResponse resp;
      auto rc = unary(node, "charting the observations", &C::RecordObservations, r, resp);
      if (rc == done)
        json ? print_json(resp) : (void)std::printf("charted for %s\n", name_.c_str());
      return rc;
    }
    if (patient_erase_->parsed()) {
      v1::ErasePatientRequest r;
      r.set_name(name_);
      v1::ErasePatientResponse resp;
      auto rc = unary(node, "erasing the patient", &R::ErasePatient, r, resp);
      if (rc == done)
        json ? print_json(resp)
             : (void)std::printf("erased %s (pseudonym %s); %d devices detached\n", resp.name().c_str(),
                                 resp.pseudonym().c_str(), resp.detached_devices_size());
      return rc;
    }
    v1::GetPatientSettingsRequest get;
    get.set_patient(name_);
    v1::PatientSettings current;
    auto rc = unary(node, "reading the settings", &C::GetPatientSettings, get, current);
    if (rc != done)
      return rc;
    if (settings_set_->parsed()) {
      auto change = nlohmann::json::parse(data_, nullptr, false);
      if (change.is_discarded() || !change.is_object()) {
        std::fprintf(stderr, "twinctl: --data: a JSON object of PatientSettings fields\n");
        return usage;
      }
      std::string text;
      pb::util::JsonPrintOptions o;
      (void)pb::util::MessageToJsonString(current, &text, o);
      auto merged = nlohmann::json::parse(text);
      merged.merge_patch(change);
      v1::UpdatePatientSettingsRequest r;
      r.set_patient(name_);
      if (auto st = pb::util::JsonStringToMessage(merged.dump(), r.mutable_settings()); !st.ok()) {
        std::fprintf(stderr, "twinctl: --data: %s\n", st.ToString().c_str());
        return usage;
      }
      rc = unary(node, "changing the settings", &C::UpdatePatientSettings, r, current);
      if (rc != done)
        return rc;
    }
    print_json(current);
    return done;
  }
  auto name = split_name(name_, "devices");
  if (!name)
    return usage;
  v1::Device d;
  int rc = done;
  if (device_create_->parsed()) {
    v1::DeviceType type{};
    if (!v1::DeviceType_Parse("DEVICE_TYPE_" + type_, &type) && !v1::DeviceType_Parse(type_, &type)) {
      std::fprintf(stderr, "twinctl: --type %s: not a device type (BEDSIDE_MONITOR, PULSE_OXIMETER, ...)\n",
                   type_.c_str());
      return usage;
    }
    v1::CreateDeviceRequest r;
    r.set_parent(name->first);
    r.set_device_id(name->second);
    r.mutable_device()->set_type(type);
    rc = unary(node, "creating the device", &R::CreateDevice, r, d);
  } else if (device_get_->parsed()) {
    v1::GetDeviceRequest r;
    r.set_name(name_);
    rc = unary(node, "reading the device", &R::GetDevice, r, d);
  } else if (device_assign_->parsed()) {
    v1::AssignDeviceRequest r;
    r.set_device(name_);
    r.set_patient(patient_);
    rc = unary(node, "assigning the device", &R::AssignDevice, r, d);
  } else if (device_unassign_->parsed()) {
    v1::UnassignDeviceRequest r;
    r.set_device(name_);
    rc = unary(node, "unassigning the device", &R::UnassignDevice, r, d);
  } else if (device_decommission_->parsed()) {
    v1::DecommissionDeviceRequest r;
    r.set_device(name_);
    rc = unary(node, "decommissioning the device", &R::DecommissionDevice, r, d);
  } else {
    v1::ResetDeviceSequenceRequest r;
    r.set_device(name_);
    rc = unary(node, "resetting the device's sequence", &R::ResetDeviceSequence, r, d);
  }
  if (rc == done)
    print_device(d, json);
  return rc;
}

}  // namespace healthtwin::twinctl
