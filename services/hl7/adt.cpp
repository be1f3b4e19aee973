#include "services/hl7/adt.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <google/protobuf/field_mask.pb.h>
#include <nlohmann/json.hpp>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"

namespace healthtwin::hl7 {

namespace {

bed_location read_location(const message& m, const segment& pv1, int field) {
  return {m.value(pv1, field, 1), m.value(pv1, field, 2), m.value(pv1, field, 3)};
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const segment* first(const message& m, const std::string& id) {
  for (auto& s : m.segments())
    if (s.id() == id)
      return &s;
  return nullptr;
}

std::string bed_text(const bed_location& b) {
  return b.room.empty() ? b.bed : b.room + "-" + b.bed;
}

ack_error failure(const std::string& what, const grpc::Status& st) {
  return {std::nullopt, err_code::internal,
          what + ": " + models::bounded(st.error_message(), 160) + " (" + std::to_string(st.error_code()) + ")"};
}

}  // namespace

std::optional<adt_event> read_adt(const message& m, const std::string& trigger, error& why) {
  adt_event e;
  e.trigger = trigger;
  auto* pid = first(m, "PID");
  if (!pid) {
    why = {{"PID", 1, 0, 0}, "an ADT message needs a PID segment"};
    return std::nullopt;
  }
  auto id = m.value(*pid, 3, 1);
  e.patient_id = lower(id);
  if (!models::is_valid_id(e.patient_id)) {
    why = {pid->at(3, 1), "PID-3: the patient identifier must be 1-63 letters, digits or '-', was " +
                              models::quoted_input(id)};
    return std::nullopt;
  }
  if (auto* pv1 = first(m, "PV1")) {
    e.location = read_location(m, *pv1, 3);
    e.prior = read_location(m, *pv1, 6);
  }
  if ((trigger == "A01" || trigger == "A02") && e.location.empty()) {
    why = {{"PV1", 1, 3, 0}, "PV1-3: an admit or transfer needs the assigned location (ward^room^bed)"};
    return std::nullopt;
  }
  for (auto* b : {&e.location, &e.prior})
    if (b->ward.size() > 64 || bed_text(*b).size() > 64) {
      why = {{"PV1", 1, b == &e.location ? 3 : 6, 0}, "PV1: a ward or bed longer than 64 characters"};
      return std::nullopt;
    }
  return e;
}

std::optional<bed_map> bed_map::load(const std::string& path, std::string& why) {
  std::ifstream in{path};
  if (!in) {
    why = "cannot read the bed map " + path;
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), why);
}

std::optional<bed_map> bed_map::parse(const std::string& text, std::string& why) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    why = "the bed map must be a JSON object from \"ward^room^bed\" to device ids";
    return std::nullopt;
  }
  bed_map out;
  for (auto& [bed, devices] : j.items()) {
    if (!devices.is_array()) {
      why = "bed map: " + models::quoted_input(bed) + " must map to an array of device ids";
      return std::nullopt;
    }
    for (auto& d : devices) {
      if (!d.is_string() || !models::is_valid_id(d.get<std::string>())) {
        why = "bed map: " + models::quoted_input(bed) + " lists " + models::quoted_input(d.dump()) +
              ", not a device id";
        return std::nullopt;
      }
      out.beds_[bed].push_back(d.get<std::string>());
    }
  }
  return out;
}

const std::vector<std::string>& bed_map::devices(const bed_location& b) const {
  static const std::vector<std::string> none;
  auto i = beds_.find(b.key());
  return i == beds_.end() ? none : i->second;
}

adt_handler::adt_handler(std::string tenant, bed_map beds, v1::RegistryService::StubInterface& registry,
                         std::chrono::seconds deadline)
  : tenant_(std::move(tenant)), beds_(std::move(beds)), registry_(registry), deadline_(deadline) {}

void adt_handler::deadline(grpc::ClientContext& ctx) const {
  ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
}

grpc::Status adt_handler::upsert_patient(const adt_event& e, v1::Patient& out) {
  auto name = "tenants/" + tenant_ + "/patients/" + e.patient_id;
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetPatientRequest req;
    req.set_name(name);
    auto st = registry_.GetPatient(&ctx, req, &out);
    if (st.ok() && (e.location.empty() || (out.ward() == e.location.ward && out.bed() == bed_text(e.location))))
      return st;
    if (!st.ok() && st.error_code() != grpc::StatusCode::NOT_FOUND)
      return st;
    if (!st.ok()) {
      grpc::ClientContext cctx;
      deadline(cctx);
      v1::CreatePatientRequest create;
      create.set_parent("tenants/" + tenant_);
      create.set_patient_id(e.patient_id);
      create.mutable_patient()->set_ward(e.location.ward);
      create.mutable_patient()->set_bed(bed_text(e.location));
      auto created = registry_.CreatePatient(&cctx, create, &out);
      if (created.error_code() != grpc::StatusCode::ALREADY_EXISTS)  // else: raced, update below
        return created;
    }
  }
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::UpdatePatientRequest update;
  update.mutable_patient()->set_name(name);
  update.mutable_patient()->set_ward(e.location.ward);
  update.mutable_patient()->set_bed(bed_text(e.location));
  update.mutable_update_mask()->add_paths("ward");
  update.mutable_update_mask()->add_paths("bed");
  return registry_.UpdatePatient(&ctx, update, &out);
}

grpc::Status adt_handler::assign(const std::string& device, const std::string& patient) {
  auto name = "tenants/" + tenant_ + "/devices/" + device;
  v1::Device d;
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetDeviceRequest req;
    req.set_name(name);
    auto st = registry_.GetDevice(&ctx, req, &d);
    if (!st.ok())
      return st;
  }
  if (d.patient() == patient)
    return grpc::Status::OK;
  if (!d.patient().empty()) {  // the bed's previous patient left without a discharge
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::UnassignDeviceRequest req;
    req.set_device(name);
    auto st = registry_.UnassignDevice(&ctx, req, &d);
    if (!st.ok())
      return st;
  }
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::AssignDeviceRequest req;
  req.set_device(name);
  req.set_patient(patient);
  return registry_.AssignDevice(&ctx, req, &d);
}

grpc::Status adt_handler::unassign_from(const std::string& patient, const std::vector<std::string>& devices) {
  for (auto& device : devices) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::Device d;
    v1::GetDeviceRequest get;
    get.set_name(device);
    auto st = registry_.GetDevice(&ctx, get, &d);
    if (!st.ok())
      return st;
    if (d.patient() != patient)
      continue;  // not (any more) this patient's
    grpc::ClientContext uctx;
    deadline(uctx);
    v1::UnassignDeviceRequest req;
    req.set_device(device);
    if (auto u = registry_.UnassignDevice(&uctx, req, &d); !u.ok())
      return u;
  }
  return grpc::Status::OK;
}

std::vector<ack_error> adt_handler::apply(const adt_event& e) {
  auto patient_name = "tenants/" + tenant_ + "/patients/" + e.patient_id;
  v1::Patient p;
  if (e.trigger == "A03") {  // discharge: the patient's devices are freed
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetPatientRequest req;
    req.set_name(patient_name);
    auto st = registry_.GetPatient(&ctx, req, &p);
    if (st.error_code() == grpc::StatusCode::NOT_FOUND)
      return {};  // never admitted here: nothing to free
    if (!st.ok())
      return {failure("PID-3: reading the patient", st)};
    std::vector<std::string> devices(p.devices().begin(), p.devices().end());
    if (auto u = unassign_from(patient_name, devices); !u.ok())
      return {failure("unassigning the patient's devices", u)};
    return {};
  }
  if (auto st = upsert_patient(e, p); !st.ok())
    return {failure("PID-3: registering the patient", st)};
  if (e.trigger == "A08")
    return {};
  if (e.trigger == "A02" && !e.prior.empty()) {
    std::vector<std::string> prior;
    for (auto& d : beds_.devices(e.prior))
      prior.push_back("tenants/" + tenant_ + "/devices/" + d);
    if (auto u = unassign_from(patient_name, prior); !u.ok())
      return {failure("PV1-6: unassigning the prior bed's devices", u)};
  }
  std::vector<ack_error> errors;
  for (auto& d : beds_.devices(e.location))
    if (auto st = assign(d, patient_name); !st.ok())
      errors.push_back(failure("PV1-3: assigning device " + d, st));
  return errors;
}

}  // namespace healthtwin::hl7
