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

#include "services/peer/shard_handoff.hpp"

#include <algorithm>
#include <set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/alerts/alert_hub.hpp"
#include "actors/ingest/ingest_sequencer.hpp"
#include "actors/twin/twin.hpp"
#include "actors/index/twin_query.hpp"
#include "services/peer/cluster_metrics.hpp"
#include "services/peer/cluster_peers.hpp"
#include "services/peer/owner_forwarding.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/cluster_records.hpp"
#include "storage/errc.hpp"
#include "storage/shard_transfer.hpp"
#include "storage/store.hpp"

namespace healthtwin::services {

namespace {

using clock = std::chrono::steady_clock;
int64_t ms_since(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t).count();
}

// Columns a shard's records may come in (storage/shard_transfer.hpp).
bool shard_column(uint32_t c) {
  using storage::column;
  for (auto ok : {column::registry, column::twins, column::series, column::alerts, column::keys, column::meta})
    if (c == static_cast<uint32_t>(ok))
      return true;
  return false;
}

std::string list(const std::vector<uint32_t>& shards) { return cluster::shard_list(shards); }

}  // namespace

shard_handoff::shard_handoff(handoff_parts parts, handoff_settings settings)
    : parts_(std::move(parts)), settings_(settings) {}

shard_residents::names shard_handoff::shard_names(const std::vector<uint32_t>& shards) const {
  auto set = std::make_shared<std::set<uint32_t>>(shards.begin(), shards.end());
  return [set, n = parts_.store->shards()](const std::string& name) {
    return set->count(models::shard_of(name, n)) > 0;
  };
}

void shard_handoff::on_change(const cluster::ownership_change& change) {
  auto& ctx = parts_;
  bool running = ctx.ready->load();  // before recovery the replay sees the new owners itself
  auto in = [&](const std::vector<uint32_t>& shards) { return shard_names(shards); };
  if (!change.lost.empty()) {
    if (running)
      if (auto err = parts_.sequencer->run({actors::shard_step::kind::release, change.lost},
                                   std::chrono::seconds(60)))
        spdlog::error("hand-off: releasing shards {} failed: {}", list(change.lost),
                      storage::describe(err));
    ask_hub_to(false, change.lost);
    ctx.index->remove_if(in(change.lost));
    if (residents_.gone)
      residents_.gone(in(change.lost));
  }
  if (!change.gained.empty()) {
    ask_hub_to(true, change.gained);
    if (ctx.index->seeded()) {  // else the first query seeds every shard this node owns
      auto gained = in(change.gained);
      std::set<uint32_t> set(change.gained.begin(), change.gained.end());
      if (auto err = actors::seed_twin_index(*ctx.store, *ctx.index,
                                             [&](uint32_t s) { return set.count(s) > 0; }))
        spdlog::error("hand-off: seeding the twin index failed: {}", storage::describe(err));
    }
    if (residents_.take_up)
      residents_.take_up(in(change.gained));
  }
  spdlog::info("hand-off: took up {} shard(s), let go of {} (state {})", change.gained.size(),
               change.lost.size(), ctx.members->digest());
}

void shard_handoff::ask_hub_to(bool take, const std::vector<uint32_t>& shards) {
  caf::scoped_actor self{*parts_.sys};  // one per ask: late answers die with it
  bool done = false;
  auto on_answer = [&](bool) { done = true; };
  auto on_error = [&](caf::error&) {};
  if (take)
    self->request(parts_.alert_hub, std::chrono::seconds(60), actors::alert_take_shards_atom::value, shards)
        .receive(on_answer, on_error);
  else
    self->request(parts_.alert_hub, std::chrono::seconds(60), actors::alert_drop_shards_atom::value, shards)
        .receive(on_answer, on_error);
  if (!done)
    spdlog::error("hand-off: the alert hub did not {} shards {} in time", take ? "take" : "drop",
                  list(shards));
}

void shard_handoff::before_gaining(const std::vector<uint32_t>& shards) {
  if (!parts_.ready->load())
    return;  // before recovery: nothing of them is loaded, and the replay skips them
  if (auto err = parts_.sequencer->run({actors::shard_step::kind::adopt, shards}, std::chrono::seconds(60)))
    spdlog::error("hand-off: clearing shards {} before taking them up failed: {}", list(shards),
                  storage::describe(err));
}

void shard_handoff::merge_state(const cluster::cluster_state& theirs, std::string& error) {
  auto change = parts_.members->merge(theirs, error);  // unchanged when it failed
  if (change.changed)
    on_change(change);
}

grpc::Status shard_handoff::update_state(const internal::ClusterStateRecord& req,
                                         internal::ClusterStateRecord* resp) {
  std::string error;
  auto theirs = state_from_record(req, error);
  if (!error.empty())
    return invalid_argument("state", error);
  auto mine = parts_.members->state();
  if (auto why = mine.incompatible(theirs); !why.empty())
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "another cluster: " + why);
  merge_state(theirs, error);
  if (!error.empty())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot persist the cluster state: " + error);
  state_to_record(parts_.members->state(), resp);
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
  auto self = parts_.members->self_member().name;
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
    err = storage::export_shard(*parts_.store, shard, settings_.chunk_bytes, send);
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
  auto& members = *parts_.members;
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
  auto stub = parts_.forwarding->peer(*to);
  if (!stub)
    return retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change, "no channel to " + req.to(),
                       std::chrono::milliseconds(1000));

  auto fenced_at = clock::now();
  if (auto err = parts_.sequencer->run({actors::shard_step::kind::fence, shards}, std::chrono::seconds(30)))
    return to_status(err);
  auto* probe = parts_.probe;
  bool let_go = false;  // the shards' rollouts
  auto abort = [&](grpc::Status st) {
    if (probe)
      probe->on_handoff(false);
    if (let_go && residents_.take_up)
      residents_.take_up(shard_names(shards));
    if (auto err = parts_.sequencer->run({actors::shard_step::kind::unfence, shards}, std::chrono::seconds(30)))
      spdlog::error("hand-off: lifting the fence of shards {} failed: {}", list(shards),
                    storage::describe(err));
    spdlog::warn("hand-off of shards {} to {} abandoned: {}", list(shards), req.to(), st.error_message());
    return st;
  };
  if (auto err = parts_.sequencer->run({actors::shard_step::kind::checkpoint, shards}, settings_.checkpoint_timeout))
    return abort(retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change,
                             "the checkpoint before the hand-off failed: " + storage::describe(err),
                             std::chrono::milliseconds(1000)));
  auto checkpointed_ms = ms_since(fenced_at);
  if (residents_.let_go) {
    residents_.let_go(shard_names(shards));
    let_go = true;
  }
  uint64_t records = 0, bytes = 0;
  if (auto st = stream_shards(*stub, req.to(), shards, records, bytes); !st.ok())
    return abort(st);
  auto streamed_ms = ms_since(fenced_at);

  // Every record is durable on the new owner: give the shards to it.
  if (auto err = storage::note_drops_owed(*parts_.store, shards))
    return abort(retry_later(grpc::StatusCode::UNAVAILABLE, refusal::membership_change,
                             "cannot note the shards' drop: " + storage::describe(err),
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
    if (auto err = storage::drop_shard(*parts_.store, s))
      spdlog::error("hand-off: dropping shard {} failed (dropped at the next start): {}", s,
                    storage::describe(err));
  if (auto err = storage::note_drops_owed(*parts_.store, {}))
    spdlog::error("hand-off: clearing the owed drops failed: {}", storage::describe(err));
  spdlog::info("hand-off: shards {} to {}: {} records, {} bytes; checkpoint after {} ms, streamed "
               "after {} ms, unavailable for {} ms",
               list(shards), req.to(), records, bytes, checkpointed_ms, streamed_ms, unavailable_ms);
  state_to_record(members.state(), resp->mutable_state());
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
  auto& store = *parts_.store;
  internal::ShardChunk chunk;
  std::vector<uint32_t> received;  // in order; the last is being written
  uint64_t records = 0, position = parts_.sequencer->last_position();
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
      if (parts_.members->owns(chunk.shard()))
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
  auto stub = parts_.forwarding->peer(member);
  if (!stub)
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no channel");
  grpc::ClientContext cc;
  cc.set_deadline(std::chrono::system_clock::now() + timeout);
  internal::ClusterStateRecord req, resp;
  state_to_record(state, &req);
  auto st = stub->UpdateClusterState(&cc, req, &resp);
  if (st.ok() && theirs) {
    std::string error;
    *theirs = state_from_record(resp, error);
  }
  return st;
}

void shard_handoff::drop_owed() {
  auto& store = *parts_.store;
  auto owed = storage::load_drops_owed(store);
  if (!owed) {
    spdlog::error("hand-off: reading the owed drops failed: {}", storage::describe(owed.error()));
    return;
  }
  if (owed->empty())
    return;
  for (auto s : *owed) {
    if (parts_.members->owns(s))
      continue;  // the hand-off stopped before it gave the shard away
    if (auto err = storage::drop_shard(store, s))
      spdlog::error("hand-off: dropping shard {} failed: {}", s, storage::describe(err));
    else
      spdlog::info("hand-off: dropped shard {}, handed over before the last stop", s);
  }
  if (auto err = storage::note_drops_owed(store, {}))
    spdlog::error("hand-off: clearing the owed drops failed: {}", storage::describe(err));
}

}  // namespace healthtwin::services
