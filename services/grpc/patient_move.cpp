#include "services/grpc/patient_move.hpp"

#include <caf/all.hpp>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/index/twin_index.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/shard/shard.hpp"
#include "services/grpc/api_convert.hpp"
#include "services/grpc/field_rules.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/errc.hpp"
#include "storage/registry.hpp"
#include "storage/store.hpp"

namespace healthtwin::services {

namespace {

using grpc::Status;
using grpc::StatusCode;
using kind = storage::patient_entry::kind;

constexpr size_t part_bytes = size_t{4} << 20;  // under the node's request limit

// One step of the shard fence, waited for.
caf::error shard_step(service_env& env, actors::shard_step::kind what, uint32_t shard,
                      std::chrono::milliseconds timeout) {
  return env.ctx.sequencer->run({what, {shard}}, timeout);
}

// Lifts the move's fence however the move ends.
struct fence_guard {
  service_env& env;
  uint32_t shard;
  ~fence_guard() {
    if (auto err = shard_step(env, actors::shard_step::kind::unfence, shard, std::chrono::seconds(60)))
      spdlog::error("patient move: lifting the fence of shard {} failed: {}", shard, storage::describe(err));
  }
};

// The parts of an AcceptPatient transfer: the patient's fields in every
// part, its records cut at about part_bytes.
std::vector<v1::AcceptPatientRequest> parts_of(const v1::Patient& patient, const std::string& from,
                                               std::vector<storage::patient_entry>& entries, uint64_t& bytes) {
  std::vector<v1::AcceptPatientRequest> parts(1);
  size_t in_part = 0;
  for (auto& e : entries) {
    auto size = e.key.size() + e.value.size() + 16;
    if (in_part > 0 && in_part + size > part_bytes) {
      parts.emplace_back();
      in_part = 0;
    }
    auto* r = parts.back().add_records();
    r->set_kind(static_cast<uint32_t>(e.what));
    r->set_key(std::move(e.key));
    r->set_value(std::move(e.value));
    in_part += size;
    bytes += size;
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    *parts[i].mutable_patient() = patient;
    parts[i].set_from_region(from);
    parts[i].set_part(static_cast<uint32_t>(i));
    parts[i].set_last(i + 1 == parts.size());
  }
  return parts;
}

// Whether the region's patient `name` is this one (a move that got there
// before and is now called again): the same creation time.
bool same_patient_there(service_env& env, grpc::ServerContext* call, owner_stubs& stubs,
                        const std::string& name, int64_t create_time_ms) {
  grpc::ClientContext ctx;
  env.prepare_region_forwarded(call, ctx);
  v1::GetPatientRequest get;
  get.set_name(name);
  v1::Patient there;
  if (!stubs.registry->GetPatient(&ctx, get, &there).ok())
    return false;
  return google::protobuf::util::TimeUtil::TimestampToMilliseconds(there.create_time()) == create_time_ms;
}

}  // namespace

grpc::Status patient_arrivals::add(const v1::AcceptPatientRequest& req,
                                   std::optional<std::vector<storage::patient_entry>>& complete) {
  size_t bytes = 0;
  std::vector<storage::patient_entry> entries;
  entries.reserve(static_cast<size_t>(req.records_size()));
  for (int i = 0; i < req.records_size(); ++i) {
    auto& r = req.records(i);
    if (r.kind() < static_cast<uint32_t>(kind::snapshot) || r.kind() > static_cast<uint32_t>(kind::silence))
      return invalid_argument("records[" + std::to_string(i) + "].kind", "must be 1-5");
    if (r.key().size() > 256)
      return invalid_argument("records[" + std::to_string(i) + "].key", "must be at most 256 bytes");
    bytes += r.key().size() + r.value().size();
    entries.push_back({static_cast<kind>(r.kind()), r.key(), r.value()});
  }
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock{mtx_};
  for (auto i = pending_.begin(); i != pending_.end();)
    i = now - i->second.touched > idle ? pending_.erase(i) : std::next(i);
  auto& name = req.patient().name();
  if (req.part() == 0) {
    pending_.erase(name);  // a transfer starts over
    if (pending_.size() >= max_transfers)
      return Status(StatusCode::RESOURCE_EXHAUSTED, "too many patients are moving here at once; retry");
    pending_[name] = pending{};
  }
  auto it = pending_.find(name);
  if (it == pending_.end() || it->second.next_part != req.part())
    return invalid_argument("part", "must be " + std::to_string(it == pending_.end() ? 0 : it->second.next_part) +
                                        ": parts come in order, from 0");
  auto& p = it->second;
  if (p.bytes + bytes > max_bytes) {
    pending_.erase(it);
    return Status(StatusCode::RESOURCE_EXHAUSTED, "the patient's records exceed " +
                                                      std::to_string(max_bytes >> 20) + " MiB");
  }
  p.bytes += bytes;
  p.touched = now;
  ++p.next_part;
  for (auto& e : entries)
    p.entries.push_back(std::move(e));
  if (req.last()) {
    complete = std::move(p.entries);
    pending_.erase(it);
  }
  return Status::OK;
}

grpc::Status move_patient_home(service_env& env, grpc::ServerContext* call, const v1::MovePatientHomeRequest& req,
                               v1::MovePatientHomeResponse* resp) {
  auto& name = req.name();
  auto& target = req.home_region();
  if (!env.regions)
    return Status(StatusCode::FAILED_PRECONDITION, "this node has no region (--region): there is nowhere to move to");
  // Not registered here: NOT_FOUND, and the caller's routing asks its home region.
  auto& store = *env.ctx.store;
  auto rec = storage::registry{store}.get_patient(name);
  if (!rec)
    return to_status(rec.error());
  if (!*rec)
    return Status(StatusCode::NOT_FOUND, "patient not found");
  if (target.empty())
    return invalid_argument("home_region", "must name a region");
  if (auto v = check_region(target, "home_region"))
    return invalid_argument({*v});
  if (target == env.regions->settings().self)
    return Status(StatusCode::FAILED_PRECONDITION, "the patient is homed in " + target + " already");
  if (env.regions->endpoint(target).empty())
    return invalid_argument("home_region", "names no region this node knows (--region-endpoints)");
  std::string why;
  auto stubs = env.regions->stubs(target, why);
  if (!stubs)
    return owner_routing::region_unreachable(target, why);

  // One move at a time per member: a move lifts its shard's fence when it ends.
  static std::mutex one_at_a_time;
  std::unique_lock<std::mutex> moving_now{one_at_a_time, std::try_to_lock};
  if (!moving_now.owns_lock())
    return retry_later(StatusCode::ABORTED, refusal::shard_moving,
                       "another patient is moving away from this member; retry", std::chrono::seconds(1));
  // Nothing of the patient changes from here until it is erased: its
  // shard is fenced (calls about its twins are refused UNAVAILABLE, retry)
  // and checkpointed, so the stored records are the whole patient.
  auto shard = models::shard_of(name, store.shards());
  if (auto err = shard_step(env, actors::shard_step::kind::fence, shard, std::chrono::seconds(60)))
    return Status(StatusCode::UNAVAILABLE, "the patient's shard could not be fenced: " + storage::describe(err));
  fence_guard fenced{env, shard};
  if (auto err = shard_step(env, actors::shard_step::kind::checkpoint, shard, std::chrono::seconds(120)))
    return Status(StatusCode::UNAVAILABLE, "the patient's shard could not be checkpointed: " + storage::describe(err));
  auto entries = storage::export_patient(store, name);
  if (!entries)
    return to_status(entries.error());
  v1::Patient moving;
  to_api(**rec, &moving);
  moving.clear_devices();
  moving.clear_etag();
  moving.set_home_region(target);
  uint64_t bytes = 0;
  resp->set_records(entries->size());
  auto parts = parts_of(moving, env.regions->settings().self, *entries, bytes);
  resp->set_bytes(bytes);
  for (auto& part : parts) {
    grpc::ClientContext ctx;
    env.prepare_region_forwarded(call, ctx);
    auto st = stubs->registry->AcceptPatient(&ctx, part, resp->mutable_patient());
    if (st.error_code() == StatusCode::ALREADY_EXISTS && part.last() &&
        same_patient_there(env, call, *stubs, name, (*rec)->create_time_ms))
      break;  // moved there by an earlier call that did not finish here
    if (st.error_code() == StatusCode::ALREADY_EXISTS)
      return Status(StatusCode::ALREADY_EXISTS, "region " + target + " has another patient with this id");
    if (st.error_code() == StatusCode::UNAVAILABLE || st.error_code() == StatusCode::DEADLINE_EXCEEDED)
      return owner_routing::region_unreachable(target, st.error_message() + " (nothing moved: call again)");
    if (!st.ok())
      return Status(st.error_code(), "region " + target + ": " + st.error_message());
  }

  // The new home has it: the patient is erased here, devices detached.
  auto unfinished = [&](const std::string& what) {
    return Status(StatusCode::UNAVAILABLE, "the patient is registered in " + target + " now, but " + what +
                                               " here failed: call MovePatientHome again to finish");
  };
  if (auto st = env.release_elsewhere(call, name); !st.ok())
    return unfinished("detaching its devices (" + st.error_message() + ")");
  auto erased = env.sequence(call, actors::erase_patient{name, true});
  if (erased.error)
    return unfinished("erasing it (" + storage::describe(erased.error) + ")");
  for (auto& d : erased.patient.devices)
    resp->add_detached_devices(d);
  if (resp->patient().name().empty())
    resp->mutable_patient()->set_name(name);
  spdlog::info("patient move: a patient moved to region {} ({} records, {} bytes)", target, resp->records(), bytes);
  return Status::OK;
}

grpc::Status accept_patient(service_env& env, patient_arrivals& arrivals, const v1::AcceptPatientRequest& req,
                            v1::Patient* resp) {
  auto& p = req.patient();
  if (!env.regions)
    return Status(StatusCode::FAILED_PRECONDITION, "this node has no region (--region)");
  std::vector<field_violation> bad;
  auto& self = env.regions->settings().self;
  if (p.home_region() != self)
    bad.push_back({"patient.home_region", "must be this region, " + self});
  if (req.from_region().empty() || req.from_region() == self)
    bad.push_back({"from_region", "must name the region the patient comes from"});
  for (auto v : {check_ward(p.ward()), check_bed(p.bed())})
    if (v)
      bad.push_back(*v);
  if (!bad.empty())
    return invalid_argument(bad);
  std::optional<std::vector<storage::patient_entry>> entries;
  if (auto st = arrivals.add(req, entries); !st.ok())
    return st;
  resp->set_name(p.name());
  if (!entries)
    return Status::OK;  // more parts to come

  auto& store = *env.ctx.store;
  storage::registry registry{store};
  auto existing = registry.get_patient(p.name());
  if (!existing)
    return to_status(existing.error());
  if (*existing)
    return Status(StatusCode::ALREADY_EXISTS, "the patient is registered in this region");
  if (store.patient_erased(p.name()))
    return Status(StatusCode::FAILED_PRECONDITION,
                  "this patient id was erased in, or moved away from, this region: it cannot be registered here again");
  storage::patient_record rec;
  rec.name = p.name();
  rec.ward = p.ward();
  rec.bed = p.bed();
  rec.spo2_scale2 = p.spo2_scale2();
  rec.create_time_ms = google::protobuf::util::TimeUtil::TimestampToMilliseconds(p.create_time());
  rec.home_region = self;
  rec.version = 1;
  storage::write_batch batch{store};
  registry.put(batch, rec);
  if (auto err = storage::import_patient(store, batch, rec.name, *entries, env.ctx.sequencer->last_position()))
    return err == storage::errc::invalid_record
               ? invalid_argument("records", storage::describe(err))
               : to_status(err);
  if (auto err = store.write(batch, true))
    return to_status(err);
  // What the node holds in memory learns of it: the fleet index, a twin
  // a query may have activated before, the alert hub's open alerts.
  if (env.ctx.index)
    env.ctx.index->set_registry(rec.name, rec.ward, rec.bed);
  auto shard = models::shard_of(rec.name, store.shards());
  caf::anon_send((*env.ctx.shards)[shard], actors::forget_patient_atom::value, rec.name);
  caf::scoped_actor self_actor{*env.ctx.sys};
  bool loaded = false;
  self_actor->request(env.ctx.alert_hub, std::chrono::seconds(30), actors::alert_adopt_atom::value, rec.name)
      .receive([&](bool) { loaded = true; }, [&](caf::error&) {});
  if (!loaded)
    spdlog::error("patient move: the alert hub did not load a moved patient's alerts in time");
  spdlog::info("patient move: a patient moved here from region {} ({} records)", req.from_region(), entries->size());
  to_api(rec, resp);
  return Status::OK;
}

}  // namespace healthtwin::services
