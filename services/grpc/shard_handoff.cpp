// Moving shards between members (docs/adr/0014-shard-hand-off.md). The
// order of a hand-off keeps every acknowledged reading exactly once:
//  1. the old owner fences the shards in its sequencer, so nothing commits
//     for them after this point (callers get UNAVAILABLE and resend);
//  2. it checkpoints: twins snapshotted and windows written cover
//     everything committed for them before the fence;
//  3. it streams each shard's key range to the new owner, which writes it
//     durably (snapshots restarted at its own log position) before it
//     answers;
//  4. only then does the old owner give the shards away (persisted), so a
//     crash of either before this leaves the old owner owning them, and
//     one after it leaves the new owner owning a durable copy, which it
//     learns from the old owner's state (pushed now, or by its probes);
//  5. the old owner forgets the shards in memory and drops its copy.
// Readings resent around it come back DUPLICATE from the moved sequence
// windows, and patient twins apply a reading delivered twice once.

#include "services/grpc/shard_handoff.hpp"

#include "services/grpc/field_rules.hpp"

#include <algorithm>
#include <future>
#include <set>
#include <cstdlib>
#include <sstream>

#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/twin/twin.hpp"
#include "services/grpc/cluster_peers.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/errc.hpp"
#include "storage/shard_transfer.hpp"
#include "storage/store.hpp"

namespace healthtwin::services {

namespace {

using clock = std::chrono::steady_clock;
constexpr std::string_view drops_owed_key = "cluster_drops";

int64_t ms_since(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t).count();
}

cluster::cluster_state from_record(const internal::ClusterStateRecord& r, std::string& error) {
  auto s = cluster::cluster_state::decode(r.SerializeAsString(), error);
  return s ? std::move(*s) : cluster::cluster_state{};
}

void to_record(const cluster::cluster_state& s, internal::ClusterStateRecord* out) {
  out->ParseFromString(s.encode());
}

// Columns a shard's records may come in (storage/shard_transfer.hpp).
bool shard_column(uint32_t c) {
  using storage::column;
  for (auto ok : {column::registry, column::twins, column::series, column::alerts, column::keys})
    if (c == static_cast<uint32_t>(ok))
      return true;
  return false;
}

std::string list(const std::vector<uint32_t>& shards) {
  std::string out;
  for (auto s : shards)
    out += (out.empty() ? "" : ",") + std::to_string(s);
  return out;
}

}  // namespace

shard_handoff::shard_handoff(service_env& env, handoff_settings settings)
    : env_(env), settings_(settings) {}

caf::error shard_handoff::sequence_step(actors::shard_step step, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<caf::error>>();
  auto future = promise->get_future();
  env_.ctx.sequencer->submit(std::move(step), [promise](caf::error e) { promise->set_value(std::move(e)); });
  if (future.wait_for(timeout) != std::future_status::ready)
    return caf::make_error(caf::sec::request_timeout);
  return future.get();
}

void shard_handoff::on_change(const cluster::ownership_change& change) {
  auto& ctx = env_.ctx;
  bool running = ctx.ready->load();  // before recovery the replay sees the new owners itself
  auto in = [&](const std::vector<uint32_t>& shards) {
    auto set = std::make_shared<std::set<uint32_t>>(shards.begin(), shards.end());
    return [set, n = ctx.store->shards()](const std::string& name) {
      return set->count(models::shard_of(name, n)) > 0;
    };
  };
  auto ask_hub = [&](auto atom, const std::vector<uint32_t>& shards) {
    auto done = env_.ask<bool>(ctx.alert_hub, std::chrono::seconds(60), atom, shards);
    if (!done)
      spdlog::error("hand-off: the alert hub did not take shards {} in time", list(shards));
  };
  if (!change.lost.empty()) {
    if (running)
      if (auto err = sequence_step({actors::shard_step::kind::release, change.lost},
                                   std::chrono::seconds(60)))
        spdlog::error("hand-off: releasing shards {} failed: {}", list(change.lost),
                      storage::describe(err));
    ask_hub(actors::alert_drop_shards_atom::value, change.lost);
    ctx.index->remove_if(in(change.lost));
  }
  if (!change.gained.empty()) {
    ask_hub(actors::alert_take_shards_atom::value, change.gained);
    if (ctx.index->seeded()) {  // else the first query seeds every shard this node owns
      auto gained = in(change.gained);
      std::set<uint32_t> set(change.gained.begin(), change.gained.end());
      if (auto err = actors::seed_twin_index(*ctx.store, *ctx.index,
                                             [&](uint32_t s) { return set.count(s) > 0; }))
        spdlog::error("hand-off: seeding the twin index failed: {}", storage::describe(err));
    }
  }
  spdlog::info("hand-off: took up {} shard(s), let go of {} (state {})", change.gained.size(),
               change.lost.size(), ctx.members->digest());
}

void shard_handoff::before_gaining(const std::vector<uint32_t>& shards) {
  if (!env_.ctx.ready->load())
    return;  // before recovery: nothing of them is loaded, and the replay skips them
  if (auto err = sequence_step({actors::shard_step::kind::adopt, shards}, std::chrono::seconds(60)))
    spdlog::error("hand-off: clearing shards {} before taking them up failed: {}", list(shards),
                  storage::describe(err));
}

grpc::Status shard_handoff::update_state(const internal::ClusterStateRecord& req,
                                         internal::ClusterStateRecord* resp) {
  std::string error;
  auto theirs = from_record(req, error);
  if (!error.empty())
    return invalid_argument("state", error);
  auto mine = env_.ctx.members->state();
  if (auto why = mine.incompatible(theirs); !why.empty())
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "another cluster: " + why);
  auto change = env_.ctx.members->merge(theirs, error);
  if (!error.empty())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot persist the cluster state: " + error);
  if (change.changed)
    on_change(change);
  to_record(env_.ctx.members->state(), resp);
  return grpc::Status::OK;
}

grpc::Status shard_handoff::stream_shards(internal::PeerService::Stub& to, const std::string& to_name,
                                          const std::vector<uint32_t>& shards, uint64_t& records,
                                          uint64_t& bytes) {
  grpc::ClientContext cc;
  cc.set_deadline(std::chrono::system_clock::now() + settings_.stream_timeout);
  internal::ShardReceipt receipt;
  auto writer = to.ReceiveShard(&cc, &receipt);
  uint64_t sent = 0;
  auto self = env_.ctx.members->self_member().name;
  caf::error err;
  for (auto shard : shards) {
    uint64_t of_shard = 0;
    auto send = [&](std::vector<storage::shard_entry>&& chunk) -> caf::error {
      internal::ShardChunk msg;
      msg.set_shard(shard);
      msg.set_from(self);
      for (auto& e : chunk) {
        auto* r = msg.add_records();
        r->set_column(static_cast<uint32_t>(e.col));
        r->set_key(std::move(e.key));
        r->set_value(std::move(e.value));
        bytes += r->key().size() + r->value().size();
      }
      of_shard += chunk.size();
      if (!writer->Write(msg))
        return caf::make_error(storage::errc::io_error, "the stream to " + to_name + " broke");
      return caf::none;
    };
    err = storage::export_shard(*env_.ctx.store, shard, settings_.chunk_bytes, send);
    if (!err && of_shard == 0)  // an empty shard: the new owner still drops any stale copy
      err = send({});
    sent += of_shard;
    if (err)
      break;
  }
  writer->WritesDone();
  auto st = writer->Finish();
  if (err || !st.ok())
    return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change,
                       "shards " + list(shards) + " could not be sent to " + to_name + ": " +
                           (err ? storage::describe(err) : st.error_message()),
                       std::chrono::milliseconds(1000));
  if (receipt.records() != sent)
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        to_name + " wrote " + std::to_string(receipt.records()) + " of the " +
                            std::to_string(sent) + " records of shards " + list(shards));
  records += sent;
  return grpc::Status::OK;
}

grpc::Status shard_handoff::hand_off(const internal::HandOffRequest& req,
                                     internal::HandOffReport* resp) {
  std::unique_lock<std::mutex> one{handoff_mtx_, std::try_to_lock};
  if (!one.owns_lock())
    return grpc::Status(grpc::StatusCode::ABORTED, "a hand-off is running on this member; retry");
  auto& members = *env_.ctx.members;
  auto map = members.map();
  auto to = map->find(req.to());
  if (!to || *to == members.self() || !map->listed(*to))
    return invalid_argument("to", "must be another member of the cluster");
  std::vector<uint32_t> shards;
  for (int i = 0; i < req.shards_size(); ++i) {
    auto s = req.shards(i);
    auto field = "shards[" + std::to_string(i) + "]";
    if (s >= members.shards())
      return invalid_argument(field, "no such shard");
    if (!members.owns(s))
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          field + ": shard " + std::to_string(s) + " is not this member's (it is " +
                              map->members()[map->owner(s)].name + "'s)");
    if (std::find(shards.begin(), shards.end(), s) != shards.end())
      return invalid_argument(field, "named twice");
    shards.push_back(s);
  }
  if (shards.empty())
    return invalid_argument("shards", "none named");
  auto stub = env_.ctx.forwarding->peer(*to);
  if (!stub)
    return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change, "no channel to " + req.to(),
                       std::chrono::milliseconds(1000));

  auto fenced_at = clock::now();
  if (auto err = sequence_step({actors::shard_step::kind::fence, shards}, std::chrono::seconds(30)))
    return to_status(err);
  auto* probe = env_.ctx.cluster_probe;
  auto abort = [&](grpc::Status st) {
    if (probe)
      probe->on_handoff(false);
    if (auto err = sequence_step({actors::shard_step::kind::unfence, shards}, std::chrono::seconds(30)))
      spdlog::error("hand-off: lifting the fence of shards {} failed: {}", list(shards),
                    storage::describe(err));
    spdlog::warn("hand-off of shards {} to {} abandoned: {}", list(shards), req.to(), st.error_message());
    return st;
  };
  if (auto err = sequence_step({actors::shard_step::kind::checkpoint, shards}, settings_.checkpoint_timeout))
    return abort(retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change,
                             "the checkpoint before the hand-off failed: " + storage::describe(err),
                             std::chrono::milliseconds(1000)));
  auto checkpointed_ms = ms_since(fenced_at);
  uint64_t records = 0, bytes = 0;
  if (auto st = stream_shards(*stub, req.to(), shards, records, bytes); !st.ok())
    return abort(st);
  auto streamed_ms = ms_since(fenced_at);

  // Every record is durable on the new owner: give the shards to it.
  if (auto why = note_drops_owed(shards); !why.empty())
    return abort(retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change, "cannot note the shards' drop: " + why,
                             std::chrono::milliseconds(1000)));
  std::string error;
  auto change = members.update(
      [&](cluster::cluster_state& st) {
        for (auto s : shards)
          st.hand_over(s, req.to());
      },
      error);
  if (!error.empty())
    return abort(retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change, "cannot persist the hand-off: " + error,
                             std::chrono::milliseconds(1000)));
  // Tell the new owner now; else it learns from its next probe of us.
  if (auto st = push_state(*to, members.state(), std::chrono::seconds(10)); !st.ok())
    spdlog::warn("hand-off: {} did not take the new state yet ({}); it learns it from its probes",
                 req.to(), st.error_message());
  auto unavailable_ms = ms_since(fenced_at);
  on_change(change);  // forgets them here and lifts the fence
  if (probe) {
    probe->on_handoff_phase("checkpoint", static_cast<double>(checkpointed_ms) / 1000);
    probe->on_handoff_phase("stream", static_cast<double>(streamed_ms - checkpointed_ms) / 1000);
    probe->on_handoff_phase("flip", static_cast<double>(unavailable_ms - streamed_ms) / 1000);
    probe->on_handoff(true);
  }

  for (auto s : shards)
    if (auto err = storage::drop_shard(*env_.ctx.store, s))
      spdlog::error("hand-off: dropping shard {} failed (dropped at the next start): {}", s,
                    storage::describe(err));
  note_drops_owed({});
  spdlog::info("hand-off: shards {} to {}: {} records, {} bytes; checkpoint after {} ms, streamed "
               "after {} ms, unavailable for {} ms",
               list(shards), req.to(), records, bytes, checkpointed_ms, streamed_ms, unavailable_ms);
  to_record(members.state(), resp->mutable_state());
  for (auto s : shards) {
    resp->add_shards(s);
    resp->add_unavailable_ms(static_cast<uint32_t>(unavailable_ms));
  }
  resp->set_records(records);
  resp->set_bytes(bytes);
  return grpc::Status::OK;
}

grpc::Status shard_handoff::receive(grpc::ServerContext& call,
                                    grpc::ServerReader<internal::ShardChunk>* reader,
                                    internal::ShardReceipt* resp) {
  auto& store = *env_.ctx.store;
  internal::ShardChunk chunk;
  std::vector<uint32_t> received;  // in order; the last is being written
  uint64_t records = 0, position = env_.ctx.sequencer->last_position();
  auto fail = [&](grpc::Status st) {
    for (auto s : received)  // what was written of them goes again
      if (auto err = storage::drop_shard(store, s))
        spdlog::error("hand-off: dropping the partial copy of shard {} failed: {}", s,
                      storage::describe(err));
    return st;
  };
  while (reader->Read(&chunk)) {
    if (received.empty() || chunk.shard() != received.back()) {
      if (chunk.shard() >= store.shards())
        return fail(invalid_argument("shard", "no such shard"));
      if (std::find(received.begin(), received.end(), chunk.shard()) != received.end())
        return fail(invalid_argument("shard", "a shard's chunks come together"));
      if (env_.ctx.members->owns(chunk.shard()))
        return fail(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                 "shard " + std::to_string(chunk.shard()) + " is this member's already"));
      received.push_back(chunk.shard());
      // A copy left from an earlier time (an earlier owner, or an import
      // that did not finish) goes first.
      if (auto err = storage::drop_shard(store, chunk.shard()))
        return fail(to_status(err));
    }
    std::vector<storage::shard_entry> entries;
    entries.reserve(static_cast<size_t>(chunk.records_size()));
    for (int i = 0; i < chunk.records_size(); ++i) {
      auto& r = *chunk.mutable_records(i);
      if (!shard_column(r.column()))
        return fail(invalid_argument("records[" + std::to_string(i) + "].column",
                                     "not a column a shard's records are in"));
      entries.push_back({static_cast<storage::column>(r.column()), std::move(*r.mutable_key()),
                         std::move(*r.mutable_value())});
    }
    records += entries.size();
    if (auto err = storage::import_shard_chunk(store, received.back(), std::move(entries), position,
                                               false))
      return fail(to_status(err));
  }
  if (received.empty())
    return invalid_argument("shard", "the stream carried no chunk");
  if (call.IsCancelled())
    return fail(grpc::Status(grpc::StatusCode::CANCELLED, "the sender went away"));
  if (auto err = store.sync_wal())  // durable before the old owner gives them away
    return fail(to_status(err));
  resp->set_records(records);
  return grpc::Status::OK;
}

grpc::Status shard_handoff::push_state(uint32_t member, const cluster::cluster_state& state,
                                       std::chrono::milliseconds timeout,
                                       cluster::cluster_state* theirs) {
  auto stub = env_.ctx.forwarding->peer(member);
  if (!stub)
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no channel");
  grpc::ClientContext cc;
  cc.set_deadline(std::chrono::system_clock::now() + timeout);
  internal::ClusterStateRecord req, resp;
  to_record(state, &req);
  auto st = stub->UpdateClusterState(&cc, req, &resp);
  if (st.ok() && theirs) {
    std::string error;
    *theirs = from_record(resp, error);
  }
  return st;
}

grpc::Status shard_handoff::change_members(const v1::ChangeMembersRequest& req,
                                           v1::ChangeMembersResponse* resp) {
  std::unique_lock<std::mutex> one{change_mtx_, std::try_to_lock};
  if (!one.owns_lock())
    return grpc::Status(grpc::StatusCode::ABORTED, "a change of members runs on this member; retry");
  std::vector<cluster::member> target;
  std::vector<field_violation> bad;
  std::set<std::string> names;
  for (int i = 0; i < req.members_size(); ++i) {
    auto& m = req.members(i);
    auto field = "members[" + std::to_string(i) + "]";
    if (!valid_member_name(m.name()) || !names.insert(m.name()).second)
      bad.push_back({field + ".name", "must be a unique name of 1-253 characters of [a-z0-9.-]"});
    if (!valid_host_port(m.address()))
      bad.push_back({field + ".address", "must be host:port of the member's peer listener"});
    target.push_back({m.name(), m.address()});
  }
  if (target.empty())
    bad.push_back({"members", "the new member list is empty"});
  auto step = req.shards_per_step() == 0 ? 16u : req.shards_per_step();
  if (step > 256)
    bad.push_back({"shards_per_step", "must be 1..256"});
  if (!bad.empty())
    return invalid_argument(bad);

  auto& members = *env_.ctx.members;
  auto self = members.self_member().name;
  std::string error;
  // 1. An up-to-date view: every member's state merged in.
  for (auto m : env_.ctx.forwarding->others()) {
    auto stub = env_.ctx.forwarding->peer(m);
    if (!stub)
      continue;
    grpc::ClientContext cc;
    cc.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    internal::ClusterStateRecord theirs;
    if (!stub->GetClusterState(&cc, {}, &theirs).ok())
      continue;  // a member that owns shards and is down fails its step below
    auto state = from_record(theirs, error);
    if (error.empty() && members.state().incompatible(state).empty()) {
      auto change = members.merge(state, error);
      if (change.changed)
        on_change(change);
    }
    error.clear();
  }
  // 2. Every member of the old and the new list learns both lists.
  auto current = members.state();
  auto both = current.members();
  for (auto& m : target) {
    auto it = std::find_if(both.begin(), both.end(), [&](auto& x) { return x.name == m.name; });
    if (it == both.end())
      both.push_back(m);
    else
      it->address = m.address;
  }
  members.update([&](cluster::cluster_state& s) { s.set_members(both); }, error);
  if (!error.empty())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot persist the member list: " + error);
  auto map = members.map();
  for (auto& m : both) {
    if (m.name == self)
      continue;
    auto st = push_state(*map->find(m.name), members.state(), std::chrono::seconds(10));
    if (!st.ok())
      return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change,
                         "member " + m.name + " did not take the new member list: " + st.error_message() +
                             "; nothing moved, retry",
                         std::chrono::milliseconds(1000));
  }
  // 3. The moves, a step of shards with the same old and new owner at a time.
  auto placement = cluster::cluster_state::placement(target, members.shards());
  auto before = members.state();
  std::vector<std::pair<std::pair<std::string, std::string>, std::vector<uint32_t>>> steps;
  for (uint32_t s = 0; s < members.shards(); ++s) {
    auto& from = before.owner(s).member;
    if (from == placement[s])
      continue;
    auto key = std::make_pair(from, placement[s]);
    auto it = std::find_if(steps.begin(), steps.end(),
                           [&](auto& x) { return x.first == key && x.second.size() < step; });
    if (it == steps.end())
      it = steps.insert(steps.end(), {key, {}});
    it->second.push_back(s);
  }
  uint32_t max_unavailable = 0;
  for (auto& [who, shards] : steps) {
    auto& [from, to] = who;
    internal::HandOffRequest hreq;
    hreq.set_to(to);
    for (auto s : shards)
      hreq.add_shards(s);
    internal::HandOffReport report;
    grpc::Status st;
    map = members.map();
    if (from == self) {
      st = hand_off(hreq, &report);
    } else {
      auto stub = env_.ctx.forwarding->peer(*map->find(from));
      if (!stub) {
        st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "no channel");
      } else {
        grpc::ClientContext cc;
        cc.set_deadline(std::chrono::system_clock::now() + settings_.checkpoint_timeout +
                        settings_.stream_timeout);
        st = stub->HandOffShards(&cc, hreq, &report);
      }
    }
    if (!st.ok())
      return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change,
                         "moving shards " + list(shards) + " from " + from + " to " + to +
                             " failed: " + st.error_message() + "; " + std::to_string(resp->moves_size()) +
                             " shard(s) moved so far, retry to complete the change",
                         std::chrono::milliseconds(1000));
    // Every other member learns the new owners now rather than at its
    // next probe (calls for the shards meanwhile get UNAVAILABLE).
    auto after = from_record(report.state(), error);
    if (error.empty()) {
      auto change = members.merge(after, error);
      if (change.changed)
        on_change(change);
    }
    error.clear();
    auto now = members.state();
    map = members.map();
    std::vector<std::future<void>> pushes;
    for (auto m : env_.ctx.forwarding->others()) {
      auto name = map->members()[m].name;
      if (name == from || name == to)
        continue;
      pushes.push_back(std::async(std::launch::async, [this, m, &now] {
        push_state(m, now, std::chrono::seconds(2));
      }));
    }
    for (auto& p : pushes)
      p.get();
    resp->set_records(resp->records() + report.records());
    resp->set_bytes(resp->bytes() + report.bytes());
    for (int i = 0; i < report.shards_size(); ++i) {
      auto* mv = resp->add_moves();
      mv->set_shard(report.shards(i));
      mv->set_from(from);
      mv->set_to(to);
      mv->set_unavailable_ms(i < report.unavailable_ms_size() ? report.unavailable_ms(i) : 0);
      max_unavailable = std::max(max_unavailable, mv->unavailable_ms());
    }
  }
  resp->set_max_unavailable_ms(max_unavailable);
  // 4. The new list alone; members left out own nothing now.
  members.update([&](cluster::cluster_state& s) { s.set_members(target); }, error);
  if (!error.empty())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot persist the member list: " + error);
  map = members.map();
  for (auto& m : both)
    if (m.name != self)
      if (auto st = push_state(*map->find(m.name), members.state(), std::chrono::seconds(10)); !st.ok())
        spdlog::warn("change of members: {} did not take the final list ({}); it learns it from "
                     "its probes",
                     m.name, st.error_message());
  spdlog::info("change of members: {} shard(s) moved, {} records, longest unavailable {} ms",
               resp->moves_size(), resp->records(), max_unavailable);
  return grpc::Status::OK;
}

std::string shard_handoff::note_drops_owed(const std::vector<uint32_t>& shards) {
  storage::write_batch wb{*env_.ctx.store};
  if (shards.empty())
    wb.erase(storage::column::meta, drops_owed_key);
  else
    wb.put(storage::column::meta, drops_owed_key, list(shards));
  if (auto err = env_.ctx.store->write(wb, true))
    return storage::describe(err);
  return {};
}

void shard_handoff::drop_owed() {
  auto& store = *env_.ctx.store;
  auto owed = store.get(storage::column::meta, drops_owed_key);
  if (!owed || !*owed)
    return;
  std::stringstream in{**owed};
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    auto s = std::strtoul(item.c_str(), &end, 10);
    if (end == item.c_str() || *end != '\0' || s >= store.shards()) {
      spdlog::error("hand-off: the owed drops record names \"{}\", not a shard; ignored", item);
      continue;
    }
    if (env_.ctx.members->owns(static_cast<uint32_t>(s)))
      continue;  // the hand-off stopped before it gave the shard away
    if (auto err = storage::drop_shard(store, static_cast<uint32_t>(s)))
      spdlog::error("hand-off: dropping shard {} failed: {}", s, storage::describe(err));
    else
      spdlog::info("hand-off: dropped shard {}, handed over before the last stop", s);
  }
  note_drops_owed({});
}

}  // namespace healthtwin::services
