// Ingest in a cluster: each device's readings go to the member owning its
// shard, which commits them durably before it answers (docs/cluster.md,
// "Ingest through any member").

#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include "services/grpc/service_env.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;
using actors::ingest_result;
using actors::reading_rejection;
using actors::rejection_reason;

/// Collects the answers of a request's parts; the last one calls `done`.
class ingest_join {
public:
  ingest_join(size_t parts, actors::ingest_sequencer::ingest_callback done)
      : parts_left_(parts), done_(std::move(done)) {}

  void add(ingest_result&& part) {
    std::unique_lock<std::mutex> lock{mtx_};
    if (part.error && !result_.error)
      result_.error = std::move(part.error);
    result_.accepted += part.accepted;
    result_.rejections.insert(result_.rejections.end(),
                              std::make_move_iterator(part.rejections.begin()),
                              std::make_move_iterator(part.rejections.end()));
    if (--parts_left_ > 0)
      return;
    lock.unlock();
    done_(std::move(result_));
  }

private:
  std::mutex mtx_;
  size_t parts_left_;
  ingest_result result_;
  actors::ingest_sequencer::ingest_callback done_;
};

/// Where a reading of a forwarded part stands in the caller's request.
struct origin {
  uint32_t group;     ///< its DeviceReadings in the caller's request
  uint32_t position;  ///< its position in that DeviceReadings
  uint32_t index;     ///< its position in the whole request
};

/// The readings of a request owned by one other member, as one call.
struct remote_part {
  uint32_t member = 0;
  v1::IngestRequest request;
  /// Set instead of `request`: the caller's whole request, sent as it is.
  std::shared_ptr<const v1::IngestRequest> whole;
  std::vector<origin> origins;  ///< per reading of the request sent
  grpc::ClientContext context;
  v1::IngestResponse response;

  void add(const actors::ingest_group& g) {
    v1::DeviceReadings* d = nullptr;
    if (!whole) {
      d = request.add_devices();
      d->set_device(g.device);
    }
    for (auto& r : g.readings) {
      if (d) {
        d->add_sequence(r.sequence);
        d->add_time_ms(r.time_ms);
        d->add_metric(static_cast<v1::Metric>(r.metric));
        d->add_value(r.value);
      }
      origins.push_back({g.group, r.index - g.first_index, r.index});
    }
    if (d && std::any_of(g.readings.begin(), g.readings.end(), [](const actors::ingest_reading& r) {
          return r.quality != models::reading_quality::unspecified;
        }))
      for (auto& r : g.readings)
        d->add_quality(static_cast<v1::ReadingQuality>(r.quality));
  }

  const v1::IngestRequest& sent() const { return whole ? *whole : request; }

  /// Every reading rejected UNAVAILABLE: not known to be written.
  ingest_result unreachable(const std::string& why) const {
    ingest_result out;
    for (auto& o : origins)
      out.rejections.push_back(reading_rejection{o.index, actors::reading_field(o.group, {}, 0),
                                                 rejection_reason::unavailable, why});
    return out;
  }

  /// The owner's answer, its rejections indexed as in the caller's request.
  ingest_result answered() const {
    ingest_result out;
    out.accepted = response.accepted();
    for (auto& rej : response.rejections()) {
      if (rej.index() >= origins.size())
        continue;  // the owner answers about readings we sent: cannot happen
      auto& o = origins[rej.index()];
      // "devices[g].metric[i]": keep the field name, map g and i back.
      std::string_view field = rej.field();
      auto dot = field.find('.');
      auto bracket = field.find('[', dot == std::string_view::npos ? field.size() : dot);
      auto name = dot == std::string_view::npos ? std::string_view{}
                                                : field.substr(dot + 1, bracket - dot - 1);
      out.rejections.push_back(reading_rejection{
          o.index, actors::reading_field(o.group, name, o.position),
          static_cast<rejection_reason>(rej.reason()), rej.description()});
    }
    return out;
  }
};

/// Readings committed here whose patient another member owns, carried
/// there before the caller is acknowledged (ADR 0013). A part its owner did
/// not take is withdrawn from the acknowledgement: its readings are
/// rejected UNAVAILABLE, and the caller's resend (DUPLICATE here) carries
/// them again.
class part_carrier {
public:
  part_carrier(ingest_result&& r, size_t calls, actors::ingest_sequencer::ingest_callback done)
      : result_(std::move(r)), calls_left_(calls), done_(std::move(done)) {}

  void answered(const std::vector<size_t>& parts, const grpc::Status& st,
                const internal::PatientPartsAck& ack, const std::string& where) {
    std::unique_lock<std::mutex> lock{mtx_};
    if (!st.ok()) {
      for (auto i : parts)
        withdraw(result_.patient_parts[i], where + ", did not take them: " + st.error_message() +
                                               "; resend (what it wrote comes back DUPLICATE)");
    } else if (ack.unknown_patients_size() > 0) {
      // Committed with this device, but its patient is not registered
      // there (never, or no longer): nothing to resend.
      spdlog::warn("cluster ingest: {} patient(s) of assigned devices unknown to {}",
                   ack.unknown_patients_size(), where);
    }
    if (--calls_left_ > 0)
      return;
    lock.unlock();
    result_.patient_parts.clear();
    done_(std::move(result_));
  }

private:
  void withdraw(const actors::patient_part& p, const std::string& why) {
    for (size_t i = 0; i < p.readings.size(); ++i) {
      if (p.fresh[i]) {
        --result_.accepted;
        result_.rejections.push_back(reading_rejection{
            p.indexes[i], actors::reading_field(p.group, {}, 0), rejection_reason::unavailable, why});
        continue;
      }
      for (auto& rej : result_.rejections)  // its DUPLICATE rejection
        if (rej.index == p.indexes[i]) {
          rej.reason = rejection_reason::unavailable;
          rej.field = actors::reading_field(p.group, {}, 0);
          rej.description = why;
        }
    }
  }

  std::mutex mtx_;
  ingest_result result_;
  size_t calls_left_;
  actors::ingest_sequencer::ingest_callback done_;
};

struct parts_call {
  std::vector<size_t> parts;  ///< indexes in ingest_result::patient_parts
  internal::PatientParts request;
  internal::PatientPartsAck ack;
  grpc::ClientContext context;
};

/// Sends the patient parts of `r` to their patients' owners, one call each;
/// `done` gets `r` once all answered, less what was not taken.
void carry_patient_parts(owner_forwarding& fwd, cluster_metrics* probe, ingest_result&& r,
                         std::chrono::system_clock::time_point deadline,
                         actors::ingest_sequencer::ingest_callback done) {
  std::vector<std::pair<uint32_t, std::shared_ptr<parts_call>>> calls;
  for (size_t i = 0; i < r.patient_parts.size(); ++i) {
    auto& p = r.patient_parts[i];
    auto owner = fwd.remote_owner(p.patient).value_or(UINT32_MAX);
    auto it = std::find_if(calls.begin(), calls.end(), [&](auto& c) { return c.first == owner; });
    if (it == calls.end())
      it = calls.insert(calls.end(), {owner, std::make_shared<parts_call>()});
    it->second->parts.push_back(i);
    auto* out = it->second->request.add_parts();
    out->set_patient(p.patient);
    out->set_device(p.device);
    for (size_t k = 0; k < p.readings.size(); ++k) {
      auto& x = p.readings[k];
      out->add_sequence(x.sequence);
      out->add_time_ms(x.time_ms);
      out->add_metric(static_cast<uint32_t>(x.metric));
      out->add_value(x.value);
      out->add_resent(!p.fresh[k]);
    }
    if (std::any_of(p.readings.begin(), p.readings.end(),
                    [](const actors::reading& x) { return x.quality != models::reading_quality::unspecified; }))
      for (auto& x : p.readings)
        out->add_quality(static_cast<uint32_t>(x.quality));
  }
  auto carrier = std::make_shared<part_carrier>(std::move(r), calls.size(), std::move(done));
  for (auto& [owner, call] : calls) {
    auto stub = owner == UINT32_MAX ? nullptr : fwd.peer(owner);
    auto where = owner == UINT32_MAX ? std::string{"no member"}
                                     : "member " + fwd.member_name(owner) + ", owner of their patients";
    if (!stub) {
      carrier->answered(call->parts, grpc::Status(grpc::StatusCode::UNAVAILABLE, "not reachable"),
                        call->ack, where);
      continue;
    }
    call->context.set_deadline(deadline);
    stub->async()->ApplyPatientParts(&call->context, &call->request, &call->ack,
                                     [carrier, call = call, where = where, stub, probe](grpc::Status st) {
                                       if (probe)
                                         probe->on_forwarded("patient_parts", st.error_code());
                                       carrier->answered(call->parts, st, call->ack, where);
                                     });
  }
}

}  // namespace

grpc::Status apply_patient_parts(service_env& env, const grpc::ServerContext& call,
                                 const internal::PatientParts& req, internal::PatientPartsAck* out) {
  if (!env.ready())
    return not_ready();
  std::vector<field_violation> bad;
  std::vector<actors::ingest_group> groups;
  size_t readings = 0;
  for (int i = 0; i < req.parts_size(); ++i) {
    auto& p = req.parts(i);
    auto field = "parts[" + std::to_string(i) + "]";
    auto patient = models::parse_twin_name(p.patient());
    auto device = models::parse_twin_name(p.device());
    if (!patient || patient->kind != models::twin_kind::patient) {
      bad.push_back({field + ".patient", "must be tenants/{tenant}/patients/{patient}"});
    } else if (env.owned_elsewhere(p.patient())) {
      return service_env::not_owner_here(field + ".patient");
    }
    if (!device || device->kind != models::twin_kind::device)
      bad.push_back({field + ".device", "must be tenants/{tenant}/devices/{device}"});
    else if (patient && device->tenant != patient->tenant)
      bad.push_back({field + ".device", "must belong to the patient's tenant"});
    auto n = p.sequence_size();
    if (p.time_ms_size() != n || p.metric_size() != n || p.value_size() != n) {
      bad.push_back({field, "sequence, time_ms, metric and value must be of the same length"});
      continue;
    }
    auto& g = groups.emplace_back();
    g.device = p.device();
    g.patient = p.patient();
    g.group = static_cast<uint32_t>(i);
    g.first_index = static_cast<uint32_t>(readings);
    for (int k = 0; k < n; ++k) {
      auto metric = models::metric_from_number(p.metric(k));
      if (!metric)
        bad.push_back({field + ".metric[" + std::to_string(k) + "]", "unknown metric"});
      else if (p.sequence(k) == 0 || !std::isfinite(p.value(k)))
        bad.push_back({field + "[" + std::to_string(k) + "]", "sequence must be >= 1 and value finite"});
      else
        g.readings.push_back({p.sequence(k), p.time_ms(k), p.value(k),
                              static_cast<uint32_t>(readings + static_cast<size_t>(k)), *metric,
                              k < p.resent_size() && p.resent(k),
                              k < p.quality_size() && p.quality(k) < models::reading_quality_count
                                  ? static_cast<models::reading_quality>(p.quality(k))
                                  : models::reading_quality::unspecified});
    }
    readings += static_cast<size_t>(n);
  }
  if (readings > env.settings.max_readings_per_request)
    bad.push_back({"parts", "more than " + std::to_string(env.settings.max_readings_per_request) +
                                " readings"});
  if (!bad.empty())
    return invalid_argument(bad);
  std::vector<std::string_view> patient_at;  // per reading
  std::vector<int> groups_at;
  for (int i = 0; i < req.parts_size(); ++i) {
    auto& p = req.parts(i);
    patient_at.insert(patient_at.end(), static_cast<size_t>(p.sequence_size()), p.patient());
    groups_at.insert(groups_at.end(), static_cast<size_t>(p.sequence_size()), i);
  }
  auto promise = std::make_shared<std::promise<ingest_result>>();
  auto future = promise->get_future();
  env.ctx.sequencer->submit_patient_parts(std::move(groups), readings, [promise](ingest_result&& r) {
    promise->set_value(std::move(r));
  });
  if (future.wait_for(env.timeout(&call)) != std::future_status::ready)
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the patient parts were not committed in time");
  auto r = future.get();
  if (r.error)
    return to_status(r.error);
  out->set_accepted(r.accepted);
  std::set<std::string_view> unknown;
  uint32_t duplicates = 0;
  for (auto& rej : r.rejections) {
    if (rej.reason == rejection_reason::duplicate)
      ++duplicates;
    else if (rej.reason == rejection_reason::unknown_device)  // "no such patient"
      unknown.insert(patient_at[rej.index]);
    else if (rej.reason == rejection_reason::unavailable)
      // A patient's shard moving (a hand-off): the caller withdraws these
      // parts from its acknowledgement, its client resends, and what was
      // committed here comes back as a duplicate then.
      return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::shard_moving,
                         "parts[" + std::to_string(groups_at[rej.index]) + "]: " + rej.description,
                         std::chrono::milliseconds(500));
  }
  out->set_duplicates(duplicates);
  for (auto u : unknown)
    out->add_unknown_patients(std::string{u});
  return grpc::Status::OK;
}

grpc::Status link_device(service_env& env, const grpc::ServerContext& call,
                         const internal::DeviceLink& req) {
  if (!env.ready())
    return not_ready();
  auto patient = models::parse_twin_name(req.patient());
  auto device = models::parse_twin_name(req.device());
  if (!patient || patient->kind != models::twin_kind::patient)
    return invalid_argument("patient", "must be tenants/{tenant}/patients/{patient}");
  if (!device || device->kind != models::twin_kind::device || device->tenant != patient->tenant)
    return invalid_argument("device", "must be tenants/{tenant}/devices/{device} of the patient's tenant");
  if (env.owned_elsewhere(req.patient()))
    return service_env::not_owner_here("patient");
  auto r = env.sequence(&call, actors::link_device{req.patient(), req.device(), req.attach()});
  if (r.error)
    return to_status(r.error, "patient");
  return grpc::Status::OK;
}

grpc::Status release_devices(service_env& env, const grpc::ServerContext& call,
                             const internal::DeviceRelease& req) {
  if (!env.ready())
    return not_ready();
  auto patient = models::parse_twin_name(req.patient());
  if (!patient || patient->kind != models::twin_kind::patient)
    return invalid_argument("patient", "must be tenants/{tenant}/patients/{patient}");
  actors::release_devices cmd{req.patient(), {}};
  for (int i = 0; i < req.devices_size(); ++i) {
    auto& name = req.devices(i);
    auto device = models::parse_twin_name(name);
    if (!device || device->kind != models::twin_kind::device || device->tenant != patient->tenant)
      return invalid_argument("devices[" + std::to_string(i) + "]",
                              "must be tenants/{tenant}/devices/{device} of the patient's tenant");
    if (env.owned_elsewhere(name))
      return service_env::not_owner_here("devices[" + std::to_string(i) + "]");
    cmd.devices.push_back(name);
  }
  auto r = env.sequence(&call, std::move(cmd));
  if (r.error)
    return to_status(r.error, "device");
  return grpc::Status::OK;
}

grpc::Status owner_routing::release_elsewhere(const grpc::ServerContextBase* call,
                                            const std::string& patient) {
  if (!state_.ctx.forwarding)
    return grpc::Status::OK;
  auto rec = storage::registry{*state_.ctx.store}.get_patient(patient);
  if (!rec)
    return to_status(rec.error());
  if (!*rec)
    return grpc::Status::OK;  // the erasure answers NOT_FOUND
  std::map<uint32_t, internal::DeviceRelease> by_owner;
  for (auto& d : (*rec)->devices)
    if (auto owner = state_.ctx.forwarding->remote_owner(d)) {
      auto& release = by_owner[*owner];
      release.set_patient(patient);
      release.add_devices(d);
    }
  auto deadline = std::chrono::system_clock::now() + frame_.forward_timeout(call);
  for (auto& [owner, release] : by_owner) {
    auto where = "member " + state_.ctx.forwarding->member_name(owner) + ", owner of devices of the patient";
    internal::DeviceReleaseAck ack;
    auto st = call_peer(
        owner, where, deadline,
        [&](internal::PeerService::Stub& stub, grpc::ClientContext& c) {
          return stub.ReleaseDevices(&c, release, &ack);
        },
        "; nothing was erased, retry");
    if (!st.ok())
      return st;
  }
  return grpc::Status::OK;
}

grpc::Status owner_routing::link_elsewhere(const grpc::ServerContextBase* call, const std::string& patient,
                                         const std::string& device, bool attach) {
  auto owner = state_.ctx.forwarding ? state_.ctx.forwarding->remote_owner(patient) : std::nullopt;
  if (!owner)
    return grpc::Status::OK;
  auto where = "shard " + std::to_string(state_.ctx.forwarding->shard(patient)) + " (member " +
               state_.ctx.forwarding->member_name(*owner) + ")";
  internal::DeviceLink link;
  link.set_patient(patient);
  link.set_device(device);
  link.set_attach(attach);
  internal::DeviceLinkAck ack;
  return call_peer(*owner, where, std::chrono::system_clock::now() + frame_.forward_timeout(call),
                   [&](internal::PeerService::Stub& stub, grpc::ClientContext& c) {
                     return stub.LinkDevice(&c, link, &ack);
                   });
}

void owner_routing::submit_ingest(const grpc::ServerContextBase* call,
                                std::vector<actors::ingest_group>&& groups, size_t readings,
                                actors::ingest_sequencer::ingest_callback done,
                                std::shared_ptr<const v1::IngestRequest> whole) {
  if (!state_.ctx.forwarding) {  // a single node owns every shard
    state_.ctx.sequencer->submit(std::move(groups), readings, std::move(done));
    return;
  }
  auto& fwd = *state_.ctx.forwarding;
  std::vector<std::optional<uint32_t>> owners;
  owners.reserve(groups.size());
  for (auto& g : groups)
    owners.push_back(fwd.remote_owner(g.device));
  // One other member owns it all: the caller's request goes on unchanged.
  if (whole && !owners.empty() &&
      std::all_of(owners.begin(), owners.end(), [&](auto& o) { return o && *o == *owners[0]; }))
    for (auto& o : owners)
      o = *owners[0];
  else
    whole = nullptr;
  std::vector<actors::ingest_group> local;
  size_t local_readings = 0;
  std::vector<std::shared_ptr<remote_part>> parts;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    auto& g = groups[gi];
    auto& owner = owners[gi];
    if (!owner) {
      local_readings += g.readings.size();
      local.push_back(std::move(g));
      continue;
    }
    auto it = std::find_if(parts.begin(), parts.end(), [&](auto& p) { return p->member == *owner; });
    if (it == parts.end()) {
      parts.push_back(std::make_shared<remote_part>());
      parts.back()->member = *owner;
      parts.back()->whole = whole;
      it = parts.end() - 1;
    }
    (*it)->add(g);
  }
  auto join = std::make_shared<ingest_join>(parts.size() + (local.empty() ? 0 : 1), std::move(done));
  if (!local.empty()) {
    auto deadline = std::chrono::system_clock::now() + frame_.forward_timeout(call);
    state_.ctx.sequencer->submit(std::move(local), local_readings,
                          [join, &fwd, deadline, probe = state_.ctx.cluster_probe](ingest_result&& r) {
                            if (r.patient_parts.empty())
                              join->add(std::move(r));
                            else
                              carry_patient_parts(fwd, probe, std::move(r), deadline,
                                                  [join](ingest_result&& r) { join->add(std::move(r)); });
                          });
  }
  bool forwarded_here = call->client_metadata().count(forwarded_by_header) > 0;
  for (auto& part : parts) {
    auto where = "member " + fwd.member_name(part->member) + ", owner of these devices' shards";
    if (forwarded_here) {  // never forwarded twice
      join->add(part->unreachable("forwarded here, but " + where +
                                  " (a hand-off in progress, or the members' states differ); resend"));
      continue;
    }
    auto stubs = fwd.stubs(part->member);
    if (!stubs) {
      join->add(part->unreachable(where + ", not reached yet; resend"));
      continue;
    }
    prepare_forwarded(call, part->context);
    stubs->ingest->async()->Ingest(
        &part->context, &part->sent(), &part->response,
        [part, join, where, stubs, probe = state_.ctx.cluster_probe](grpc::Status st) {
          if (probe)
            probe->on_forwarded("ingest", st.error_code());
          if (st.ok())
            join->add(part->answered());
          else
            join->add(part->unreachable(where + ", did not answer: " + st.error_message() +
                                        "; resend (what it wrote comes back DUPLICATE)"));
        });
  }
}

}  // namespace healthtwin::services
