#include <charconv>
#include <future>

#include "actors/ingest/ingest_sequencer.hpp"
#include "healthtwin/v1/registry.grpc.pb.h"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/region_links.hpp"
#include "services/grpc/patient_move.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using grpc::ServerContext;
using grpc::Status;

class registry_service final : public v1::RegistryService::Service {
public:
  explicit registry_service(service_env& env) : env_(env) {}

  Status CreatePatient(ServerContext* call, const v1::CreatePatientRequest* req,
                       v1::Patient* resp) override {
    return env_.serve(call, "RegistryService/CreatePatient", [&](rpc_call& rc) -> Status {
      std::vector<field_violation> bad;
      auto tenant = models::parse_tenant_name(req->parent());
      if (!tenant)
        bad.push_back({"parent", "must be tenants/{tenant}"});
      if (!models::is_valid_id(req->patient_id()))
        bad.push_back({"patient_id", "must be 1-63 characters of [a-z0-9-], starting with a letter or digit"});
      for (auto v : {check_ward(req->patient().ward()), check_bed(req->patient().bed())})
        if (v)
          bad.push_back(*v);
      if (auto v = check_region(req->patient().home_region(), "patient.home_region"))
        bad.push_back(*v);
      if (!bad.empty())
        return invalid_argument(bad);
      storage::patient_record p;
      p.name = models::patient_name(*tenant, req->patient_id());
      rc.resource = p.name;
      p.home_region = req->patient().home_region();
      auto allowed = rc.allow({*tenant, {}});
      if (allowed.ok() && env_.regions)
        if (auto st = place_new_patient(call, *req, p, resp))
          return *st;
      return env_.at_owner(call, allowed, p.name,
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->CreatePatient(&c, *req, resp);
          },
          [&]() -> Status {
            p.ward = req->patient().ward();
            p.bed = req->patient().bed();
            p.spo2_scale2 = req->patient().spo2_scale2();
            auto r = run(call, actors::create_patient{std::move(p)});
            if (r.error)
              return to_status(r.error, "patient");
            to_api(r.patient, resp);
            return Status::OK;
          });
    });
  }

  Status GetPatient(ServerContext* call, const v1::GetPatientRequest* req, v1::Patient* resp) override {
    return env_.serve(call, "RegistryService/GetPatient", [&](rpc_call& rc) -> Status {
      auto name = models::parse_twin_name(req->name());
      if (!name || name->kind != models::twin_kind::patient)
        return invalid_argument("name", "must be tenants/{tenant}/patients/{patient}");
      rc.resource = req->name();
      return env_.at_owner(call, rc.allow({name->tenant, {}}), req->name(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->GetPatient(&c, *req, resp);
          },
          [&]() -> Status {
            auto rec = storage::registry{*env_.ctx.store}.get_patient(req->name());
            if (!rec)
              return to_status(rec.error());
            if (!*rec)
              return Status(grpc::StatusCode::NOT_FOUND, "patient not found");
            to_api(**rec, resp);
            return Status::OK;
          });
    });
  }

  Status UpdatePatient(ServerContext* call, const v1::UpdatePatientRequest* req,
                       v1::Patient* resp) override {
    return env_.serve(call, "RegistryService/UpdatePatient", [&](rpc_call& rc) -> Status {
      auto& in = req->patient();
      auto name = models::parse_twin_name(in.name());
      if (!name || name->kind != models::twin_kind::patient)
        return invalid_argument("patient.name", "must be tenants/{tenant}/patients/{patient}");
      actors::update_patient cmd;
      auto bad = check_mask(req->update_mask(), "update_mask", nullptr,
                            {"ward", "bed", "home_region", "spo2_scale2"}, true);
      for (auto& path : req->update_mask().paths()) {
        auto v = path == "ward" ? check_ward(in.ward()) : path == "bed" ? check_bed(in.bed()) : std::nullopt;
        if (v)
          bad.push_back(*v);
        else if (path == "home_region") {
          if (auto v = check_region(in.home_region(), "patient.home_region"))
            bad.push_back(*v);
          else if (env_.regions && env_.regions->elsewhere(in.home_region()))
            return Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "patient.home_region: a patient's data stays in its home region; "
                          "UpdatePatient cannot move it to region " + in.home_region() +
                              "; MovePatientHome moves it with its data (docs/multi-region.md)");
        }
        cmd.mask.push_back(path);
      }
      if (!in.etag().empty()) {
        auto [p, ec] = std::from_chars(in.etag().data(), in.etag().data() + in.etag().size(),
                                       cmd.expected_version);
        if (ec != std::errc{} || p != in.etag().data() + in.etag().size() || cmd.expected_version == 0)
          bad.push_back({"patient.etag", "is not an etag this service issued"});
      }
      if (!bad.empty())
        return invalid_argument(bad);
      rc.resource = in.name();
      return env_.at_owner(call, rc.allow({name->tenant, {}}), in.name(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->UpdatePatient(&c, *req, resp);
          },
          [&]() -> Status {
            cmd.fields.name = in.name();
            cmd.fields.ward = in.ward();
            cmd.fields.bed = in.bed();
            cmd.fields.home_region = in.home_region();
            if (env_.regions && cmd.fields.home_region.empty())
              cmd.fields.home_region = env_.regions->settings().self;
            cmd.fields.spo2_scale2 = in.spo2_scale2();
            auto r = run(call, std::move(cmd));
            if (r.error)
              return to_status(r.error, "patient");
            to_api(r.patient, resp);
            return Status::OK;
          });
    });
  }

  Status CreateDevice(ServerContext* call, const v1::CreateDeviceRequest* req,
                      v1::Device* resp) override {
    return env_.serve(call, "RegistryService/CreateDevice", [&](rpc_call& rc) -> Status {
      std::vector<field_violation> bad;
      auto tenant = models::parse_tenant_name(req->parent());
      if (!tenant)
        bad.push_back({"parent", "must be tenants/{tenant}"});
      if (!models::is_valid_id(req->device_id()))
        bad.push_back({"device_id", "must be 1-63 characters of [a-z0-9-], starting with a letter or digit"});
      auto type = models::device_type_from_number(static_cast<uint32_t>(req->device().type()));
      if (!type)
        bad.push_back({"device.type", "must be a known DeviceType other than UNSPECIFIED"});
      if (!bad.empty())
        return invalid_argument(bad);
      storage::device_record d;
      d.name = models::device_name(*tenant, req->device_id());
      rc.resource = d.name;
      return env_.at_owner(call, rc.allow({*tenant, {}}), d.name,
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->CreateDevice(&c, *req, resp);
          },
          [&]() -> Status {
            d.type = *type;
            auto r = run(call, actors::create_device{std::move(d)});
            if (r.error)
              return to_status(r.error, "device");
            to_api(r.device, resp);
            return Status::OK;
          });
    });
  }

  Status GetDevice(ServerContext* call, const v1::GetDeviceRequest* req, v1::Device* resp) override {
    return env_.serve(call, "RegistryService/GetDevice", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_device(rc, req->name(), "name"), req->name(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->GetDevice(&c, *req, resp);
          },
          [&]() -> Status {
            storage::device_record rec;
            if (auto st = find_device(env_, rc, req->name(), "name", rec); !st.ok())
              return st;
            to_api(rec, resp);
            return Status::OK;
          });
    });
  }

  Status AssignDevice(ServerContext* call, const v1::AssignDeviceRequest* req,
                      v1::Device* resp) override {
    return env_.serve(call, "RegistryService/AssignDevice", [&](rpc_call& rc) -> Status {
      std::vector<field_violation> bad;
      auto dev = models::parse_twin_name(req->device());
      auto pat = models::parse_twin_name(req->patient());
      if (!dev || dev->kind != models::twin_kind::device)
        bad.push_back({"device", "must be tenants/{tenant}/devices/{device}"});
      if (!pat || pat->kind != models::twin_kind::patient)
        bad.push_back({"patient", "must be tenants/{tenant}/patients/{patient}"});
      else if (dev && dev->tenant != pat->tenant)
        bad.push_back({"patient", "must belong to the device's tenant"});
      if (!bad.empty())
        return invalid_argument(bad);
      rc.resource = req->device();
      return env_.at_owner(call, rc.allow({dev->tenant, {dev->id}}), req->device(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->AssignDevice(&c, *req, resp);
          },
          [&]() -> Status {
            if (env_.owned_elsewhere(req->patient())) {
              storage::device_record d;
              if (auto st = find_device(env_, rc, req->device(), "device", d); !st.ok())
                return st;
              return assign_elsewhere(call, d, req->patient(), resp);
            }
            return assign(call, req->device(), req->patient(), resp);
          });
    });
  }

  Status UnassignDevice(ServerContext* call, const v1::UnassignDeviceRequest* req,
                        v1::Device* resp) override {
    return env_.serve(call, "RegistryService/UnassignDevice", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_device(rc, req->device(), "device"), req->device(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->UnassignDevice(&c, *req, resp);
          },
          [&]() -> Status {
            storage::device_record d;
            if (auto st = find_device(env_, rc, req->device(), "device", d); !st.ok())
              return st;
            if (!d.patient.empty() && env_.owned_elsewhere(d.patient))
              return assign_elsewhere(call, d, {}, resp);
            return assign(call, req->device(), {}, resp);
          });
    });
  }

  Status DecommissionDevice(ServerContext* call, const v1::DecommissionDeviceRequest* req,
                            v1::Device* resp) override {
    return env_.serve(call, "RegistryService/DecommissionDevice", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_device(rc, req->device(), "device"), req->device(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->DecommissionDevice(&c, *req, resp);
          },
          [&]() -> Status {
            // In a cluster, a patient on another member has it unlinked there first.
            storage::device_record d;
            if (auto st = find_device(env_, rc, req->device(), "device", d); !st.ok())
              return st;
            bool elsewhere = !d.patient.empty() && d.decommission_time_ms == 0 &&
                             env_.owned_elsewhere(d.patient);
            if (elsewhere)
              if (auto st = env_.link_elsewhere(call, d.patient, req->device(), false); !st.ok())
                return st;
            auto r = run(call, actors::decommission_device{req->device(), elsewhere});
            if (r.error && elsewhere)  // still attached here: linked there again, as AssignDevice does
              (void)env_.link_elsewhere(call, d.patient, req->device(), true);
            return reply(r, resp);
          });
    });
  }

  Status UpdateDesiredConfig(ServerContext* call, const v1::UpdateDesiredConfigRequest* req,
                             v1::Device* resp) override {
    return env_.serve(call, "RegistryService/UpdateDesiredConfig", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_device(rc, req->device(), "device"), req->device(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->UpdateDesiredConfig(&c, *req, resp);
          },
          [&]() -> Status {
            std::vector<field_violation> bad;
            actors::update_desired_config cmd{req->device(), from_api(req->desired(), "desired", bad), {}};
            if (!bad.empty())
              return invalid_argument(bad);
            if (req->has_expected_version())
              cmd.expected_version = req->expected_version();
            return reply(run(call, std::move(cmd)), resp);
          });
    });
  }

  Status ReportDeviceState(ServerContext* call, const v1::ReportDeviceStateRequest* req,
                           v1::Device* resp) override {
    return env_.serve(call, "RegistryService/ReportDeviceState", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_device(rc, req->device(), "device"), req->device(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->ReportDeviceState(&c, *req, resp);
          },
          [&]() -> Status {
            std::vector<field_violation> bad;
            actors::report_device_state cmd{req->device(), from_api(req->reported(), "reported", bad)};
            if (!bad.empty())
              return invalid_argument(bad);
            return reply(run(call, std::move(cmd)), resp);
          });
    });
  }

  Status ResetDeviceSequence(ServerContext* call, const v1::ResetDeviceSequenceRequest* req,
                             v1::Device* resp) override {
    return env_.serve(call, "RegistryService/ResetDeviceSequence", [&](rpc_call& rc) -> Status {
      return env_.at_owner(call, allow_device(rc, req->device(), "device"), req->device(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->ResetDeviceSequence(&c, *req, resp);
          },
          [&]() -> Status {
            return reply(run(call, actors::reset_device_sequence{req->device()}), resp);
          });
    });
  }

  Status ErasePatient(ServerContext* call, const v1::ErasePatientRequest* req,
                      v1::ErasePatientResponse* resp) override {
    return env_.serve(call, "RegistryService/ErasePatient", [&](rpc_call& rc) -> Status {
      auto name = models::parse_twin_name(req->name());
      if (!name || name->kind != models::twin_kind::patient)
        return invalid_argument("name", "must be tenants/{tenant}/patients/{patient}");
      auto pseudonym = env_.ctx.store->pseudonym(req->name());
      rc.resource = req->name();  // the audit log stores it by pseudonym
      return env_.at_owner(call, rc.allow({name->tenant, {}}), req->name(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->ErasePatient(&c, *req, resp);
          },
          [&]() -> Status {
            // Devices other members own are detached there first (and the name
            // purged from their files); should one be down, nothing is erased.
            if (auto st = env_.release_elsewhere(call, req->name()); !st.ok())
              return st;
            auto r = run(call, actors::erase_patient{req->name()});
            if (r.error)
              return to_status(r.error, "patient");
            resp->set_name(req->name());
            resp->set_pseudonym(pseudonym);
            set_timestamp(resp->mutable_erase_time(), service_env::now_ms());
            for (auto& d : r.patient.devices)
              resp->add_detached_devices(d);
            return Status::OK;
          });
    });
  }

  Status MovePatientHome(ServerContext* call, const v1::MovePatientHomeRequest* req,
                         v1::MovePatientHomeResponse* resp) override {
    return env_.serve(call, "RegistryService/MovePatientHome", [&](rpc_call& rc) -> Status {
      auto name = models::parse_twin_name(req->name());
      if (!name || name->kind != models::twin_kind::patient)
        return invalid_argument("name", "must be tenants/{tenant}/patients/{patient}");
      rc.resource = req->name();  // the audit log stores it by pseudonym
      return env_.at_owner(call, rc.allow({name->tenant, {}}), req->name(),
          [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->MovePatientHome(&c, *req, resp);
          },
          [&]() -> Status { return move_patient_home(env_, call, *req, resp); });
    });
  }

  Status AcceptPatient(ServerContext* call, const v1::AcceptPatientRequest* req, v1::Patient* resp) override {
    return env_.serve(call, "RegistryService/AcceptPatient", [&](rpc_call& rc) -> Status {
      auto name = models::parse_twin_name(req->patient().name());
      if (!name || name->kind != models::twin_kind::patient)
        return invalid_argument("patient.name", "must be tenants/{tenant}/patients/{patient}");
      rc.resource = req->patient().name();
      auto allowed = rc.allow({name->tenant, {}});
      if (!allowed.ok())
        return allowed;
      if (auto fwd = env_.forward(call, req->patient().name(), [&](owner_stubs& s, grpc::ClientContext& c) {
            return s.registry->AcceptPatient(&c, *req, resp);
          }))
        return *fwd;
      return accept_patient(env_, arrivals_, *req, resp);
    });
  }

  Status LocateTwin(ServerContext* call, const v1::LocateTwinRequest* req,
                    v1::TwinLocation* resp) override {
    return env_.serve(call, "RegistryService/LocateTwin", [&](rpc_call& rc) -> Status {
      auto name = models::parse_twin_name(req->name());
      if (!name || (name->kind != models::twin_kind::patient && name->kind != models::twin_kind::device))
        return invalid_argument("name", "must be tenants/{tenant}/patients/{patient} or "
                                        "tenants/{tenant}/devices/{device}");
      bool device = name->kind == models::twin_kind::device;
      auto allowed = device ? allow_device(rc, req->name(), "name") : allow_patient(rc, req->name(), "name");
      if (!allowed.ok())
        return allowed;
      auto remote = [&](owner_stubs& s, grpc::ClientContext& c) {
        return s.registry->LocateTwin(&c, *req, resp);
      };
      if (auto fwd = env_.forward(call, req->name(), remote))
        return *fwd;
      resp->set_name(req->name());
      auto self = env_.regions ? env_.regions->settings().self : std::string{};
      storage::registry reg{*env_.ctx.store};
      if (device) {
        auto rec = reg.get_device(req->name());
        if (!rec)
          return to_status(rec.error());
        if (*rec) {  // a device lives where it is registered
          resp->set_home_region(self);
          return Status::OK;
        }
      } else {
        auto rec = reg.get_patient(req->name());
        if (!rec)
          return to_status(rec.error());
        if (*rec) {
          resp->set_home_region((*rec)->home_region.empty() ? self : (*rec)->home_region);
          return Status::OK;
        }
      }
      Status missing(grpc::StatusCode::NOT_FOUND, device ? "device not found" : "patient not found");
      if (!env_.regions || call->client_metadata().count(region_forwarded_header))
        return missing;
      auto home = env_.find_home(call, req->name());
      if (!home.status.ok())
        return home.status.error_code() == grpc::StatusCode::NOT_FOUND ? missing : home.status;
      resp->set_home_region(home.region);
      return Status::OK;
    });
  }

private:
  /// On a node with a region, where a new patient goes: nullopt to register
  /// it here (its home region set to this one when empty); else the answer
  /// of its home region (created there) or the redirect to it; or
  /// ALREADY_EXISTS when another region has the id, a call from another
  /// region naming a third one FAILED_PRECONDITION.
  std::optional<Status> place_new_patient(ServerContext* call, const v1::CreatePatientRequest& req,
                                          storage::patient_record& p, v1::Patient* resp) {
    auto& regions = *env_.regions;
    bool from_region = call->client_metadata().count(region_forwarded_header) > 0;
    if (regions.elsewhere(p.home_region)) {
      if (from_region)
        return Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "patient.home_region: names region " + p.home_region + ", not this one (" +
                          regions.settings().self + ")");
      return env_.to_home(call, p.name, p.home_region, [&](owner_stubs& s, grpc::ClientContext& c) {
        return s.registry->CreatePatient(&c, req, resp);
      });
    }
    if (p.home_region.empty())
      p.home_region = regions.settings().self;
    if (from_region)
      return std::nullopt;
    // A patient id names one patient in every region: refused when a region
    // that answers has it. One that cannot be asked does not block
    // admission, nor hold it up for more than a second.
    auto there = regions.locate(p.name, [&](grpc::ClientContext& out) {
      env_.prepare_region_forwarded(call, out);
      out.set_deadline(std::min(out.deadline(), std::chrono::system_clock::now() + std::chrono::seconds(1)));
    });
    if (there.status.ok())
      return Status(grpc::StatusCode::ALREADY_EXISTS,
                    "patient is already registered, in region " + there.region);
    return std::nullopt;
  }

  static Status reply(const actors::registry_result& r, v1::Device* resp) {
    if (r.error)
      return to_status(r.error, "device");
    to_api(r.device, resp);
    return Status::OK;
  }

  Status assign(ServerContext* call, const std::string& device, const std::string& patient,
                v1::Device* resp) {
    auto r = run(call, actors::assign_device{device, patient});
    if (r.error)
      return to_status(r.error);
    to_api(r.device, resp);
    return Status::OK;
  }

  // In a cluster, when another member owns the patient: it links the
  // device to (or unlinks it from) the patient first, then this node, the
  // device's owner, assigns it. A link whose assignment then fails is
  // undone (a retry of the call mends what an undo could not).
  // `d`: the device's record as the caller read it; `patient` empty to
  // unassign it from d.patient.
  Status assign_elsewhere(ServerContext* call, const storage::device_record& d,
                          const std::string& patient, v1::Device* resp) {
    auto& device = d.name;
    if (!patient.empty() && d.patient == patient) {  // idempotent
      to_api(d, resp);
      return Status::OK;
    }
    if (!patient.empty() && !d.patient.empty())
      return Status(grpc::StatusCode::FAILED_PRECONDITION,
                    "device is attached to another patient; unassign it first");
    if (!patient.empty() && d.decommission_time_ms != 0)
      return Status(grpc::StatusCode::FAILED_PRECONDITION, "the device was decommissioned");
    auto& linked = patient.empty() ? d.patient : patient;
    if (auto st = env_.link_elsewhere(call, linked, device, !patient.empty()); !st.ok())
      return st;
    auto r = run(call, actors::assign_device{device, patient, true});
    if (r.error) {
      (void)env_.link_elsewhere(call, linked, device, patient.empty());
      return to_status(r.error);
    }
    to_api(r.device, resp);
    return Status::OK;
  }

  actors::registry_result run(ServerContext* call, actors::registry_command&& cmd) {
    return env_.sequence(call, std::move(cmd));
  }

  service_env& env_;
  patient_arrivals arrivals_;  // AcceptPatient parts, until the last
};

}  // namespace

std::unique_ptr<grpc::Service> make_registry_service(service_env& env) {
  return std::make_unique<registry_service>(env);
}

}  // namespace healthtwin::services
