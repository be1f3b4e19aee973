#include "services/peer/raft_group.hpp"

#include "storage/aead.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <uv.h>
#include <xxhash.h>

extern "C" {  // libraft's headers declare no C linkage of their own
#include <raft.h>
#include <raft/uv.h>
}

namespace healthtwin::services {

uint64_t raft_id_of(std::string_view member) {
  auto id = XXH64(member.data(), member.size(), 0x48547261667431);  // "HTraft1"
  return id == 0 ? 1 : id;
}

namespace {

struct proposal {
  struct raft_apply req;
  raft_group::committed_fn done;
  uint64_t term = 0;
};

// Work handed to the loop thread from others (proposals, tunnels, status
// questions). Closed when the loop ends: a post then returns false.
class mailbox {
public:
  explicit mailbox(uv_async_t* wake) : wake_(wake) {}

  bool post(std::function<void()> task) {
    std::lock_guard lock{mutex_};
    if (!wake_)
      return false;
    tasks_.push_back(std::move(task));
    uv_async_send(wake_);
    return true;
  }
  std::vector<std::function<void()>> take() {
    std::lock_guard lock{mutex_};
    return std::exchange(tasks_, {});
  }
  // No more posts; what is queued is returned to be run (or dropped).
  std::vector<std::function<void()>> close() {
    std::lock_guard lock{mutex_};
    wake_ = nullptr;
    return std::exchange(tasks_, {});
  }

private:
  std::mutex mutex_;
  uv_async_t* wake_;
  std::vector<std::function<void()>> tasks_;
};

// C-Raft's wire format pads every entry to a multiple of 8 bytes but sends
// its length unpadded (the receiver then misreads the entries after it):
// an entry is therefore framed as its length (4 bytes, little endian), its
// format (1 byte: sealed or plain) and 3 zero bytes, then the bytes and
// zeros up to a multiple of 8.
enum class entry_format : uint8_t { plain = 0, sealed = 1 };

struct raft_buffer framed(std::string_view entry, entry_format format) {
  struct raft_buffer buf;
  buf.len = 8 + (entry.size() + 7) / 8 * 8;
  buf.base = raft_calloc(1, buf.len);
  auto* p = static_cast<unsigned char*>(buf.base);
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<unsigned char>((uint64_t{entry.size()} >> (8 * i)) & 0xff);
  p[4] = static_cast<unsigned char>(format);
  std::memcpy(p + 8, entry.data(), entry.size());
  return buf;
}

struct unframed_entry {
  std::string_view bytes;
  entry_format format;
};

std::optional<unframed_entry> unframed(const struct raft_buffer& buf) {
  if (buf.len < 8 || buf.len % 8 != 0)
    return std::nullopt;
  auto* p = static_cast<const unsigned char*>(buf.base);
  uint64_t size = 0;
  for (int i = 0; i < 4; ++i)
    size |= uint64_t{p[i]} << (8 * i);
  if (size > buf.len - 8 || buf.len - 8 - size >= 8 || p[4] > 1 || p[5] || p[6] || p[7])
    return std::nullopt;
  return unframed_entry{{reinterpret_cast<const char*>(p + 8), size}, static_cast<entry_format>(p[4])};
}

}  // namespace

struct raft_group::impl {
  impl(const raft_group_settings& s, raft_tunnels& t, raft_state_machine& m)
      : settings(s), tunnels(t), machine(m), box(std::make_shared<mailbox>(&wake)) {}

  raft_group_settings settings;
  raft_tunnels& tunnels;
  raft_state_machine& machine;
  std::shared_ptr<mailbox> box;
  uv_loop_t loop{};
  uv_async_t wake{};
  struct raft_uv_transport transport {};
  struct raft_io io {};
  struct raft_fsm fsm {};
  struct raft raft {};
  raft_uv_accept_cb accepted = nullptr;
  std::set<raft_uv_connect*> connecting;
  bool apply_failed = false;  // an entry did not open: logged once
  uv_timer_t home_timer{};
  struct raft_transfer transfer {};
  bool transferring = false;
  uint64_t barrier_term = 0;  // the term whose barrier a non-home leader appended
  bool stopping = false;  // raft_close was called: no more proposals
  bool closing = false;   // the transport is closed: no more tunnels
  std::thread thread;

  // ---- the transport: tunnels handed to raft as local stream handles ----

  uv_stream_t* stream_of(int fd) {
    auto* pipe = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
    if (!pipe) {
      ::close(fd);
      return nullptr;
    }
    uv_pipe_init(&loop, pipe, 0);
    if (uv_pipe_open(pipe, fd) != 0) {
      ::close(fd);
      uv_close(reinterpret_cast<uv_handle_t*>(pipe), [](uv_handle_t* h) { raft_free(h); });
      return nullptr;
    }
    return reinterpret_cast<uv_stream_t*>(pipe);
  }

  const raft_peer* member(std::string_view name) const {
    auto& ms = settings.members;
    auto it = std::find_if(ms.begin(), ms.end(), [&](auto& m) { return m.name == name; });
    return it == ms.end() ? nullptr : &*it;
  }

  void on_accepted(const std::string& peer, int fd) {
    if (closing || !accepted) {
      ::close(fd);
      return;
    }
    if (auto* s = stream_of(fd))
      accepted(&transport, raft_id_of(peer), peer.c_str(), s);
  }

  void on_connected(raft_uv_connect* req, int fd, const std::string& error) {
    if (connecting.erase(req) == 0) {  // cancelled by the transport's close
      if (fd >= 0)
        ::close(fd);
      return;
    }
    if (fd < 0) {
      spdlog::debug("replication: group {}: {}", settings.group, error);
      req->cb(req, nullptr, RAFT_NOCONNECTION);
      return;
    }
    auto* s = stream_of(fd);
    req->cb(req, s, s ? 0 : RAFT_NOCONNECTION);
  }

  static impl* of(struct raft_uv_transport* t) { return static_cast<impl*>(t->impl); }

  static int transport_init(struct raft_uv_transport*, raft_id, const char*) { return 0; }

  static int transport_listen(struct raft_uv_transport* t, raft_uv_accept_cb cb) {
    auto* self = of(t);
    self->accepted = cb;
    self->tunnels.serve(self->settings.group, self->settings.members,
                        [self, box = std::weak_ptr<mailbox>(self->box)](const std::string& peer, int fd) {
                          auto b = box.lock();
                          if (!b || !b->post([self, peer, fd] { self->on_accepted(peer, fd); }))
                            ::close(fd);
                        });
    return 0;
  }

  static int transport_connect(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id, const char* address,
                               raft_uv_connect_cb cb) {
    auto* self = of(t);
    auto* peer = self->member(address);
    if (self->closing || !peer)
      return RAFT_NOCONNECTION;
    req->cb = cb;
    self->connecting.insert(req);
    self->tunnels.connect(self->settings.group, *peer,
                          [self, req, box = std::weak_ptr<mailbox>(self->box)](int fd, const std::string& error) {
                            auto b = box.lock();
                            if (!b || !b->post([self, req, fd, error] { self->on_connected(req, fd, error); }))
                              if (fd >= 0)
                                ::close(fd);
                          });
    return 0;
  }

  static void transport_close(struct raft_uv_transport* t, raft_uv_transport_close_cb cb) {
    auto* self = of(t);
    self->closing = true;
    self->accepted = nullptr;
    self->tunnels.unserve(self->settings.group);
    auto pending = std::exchange(self->connecting, {});
    for (auto* req : pending)
      req->cb(req, nullptr, RAFT_CANCELED);
    cb(t);
  }

  // ---- sealing: entries and snapshots leave the process sealed ----

  std::string aad(char kind) const {
    std::string a{"HTraft"};
    a += kind;
    for (int i = 0; i < 8; ++i)
      a += static_cast<char>((settings.group >> (8 * i)) & 0xff);
    return a;
  }

  std::optional<std::string> seal(std::string_view plain, char kind) const {
    if (!settings.entry_key)
      return std::string{plain};
    std::array<uint8_t, storage::aead::nonce_len> nonce;
    if (!storage::aead::random_nonce(nonce))
      return std::nullopt;
    std::string out{reinterpret_cast<const char*>(nonce.data()), nonce.size()};
    if (!storage::aead::seal(settings.entry_key->data(), nonce.data(), aad(kind), plain, out))
      return std::nullopt;
    return out;
  }

  entry_format format() const { return settings.entry_key ? entry_format::sealed : entry_format::plain; }

  // The plaintext of an entry or snapshot; nullopt when it was sealed under
  // another key, altered, or its format is not this member's (a member with
  // a key never takes plaintext, one without cannot open sealed bytes).
  std::optional<std::string> open(std::string_view bytes, entry_format f, char kind) const {
    if (f != format())
      return std::nullopt;
    if (!settings.entry_key)
      return std::string{bytes};
    if (bytes.size() < storage::aead::nonce_len)
      return std::nullopt;
    return storage::aead::open(settings.entry_key->data(), reinterpret_cast<const uint8_t*>(bytes.data()),
                               aad(kind), bytes.substr(storage::aead::nonce_len));
  }

  // ---- the state machine ----

  static impl* of(struct raft_fsm* f) { return static_cast<impl*>(f->data); }

  static int fsm_apply(struct raft_fsm* f, const struct raft_buffer* buf, void** result) {
    auto* self = of(f);
    auto framed_entry = unframed(*buf);
    auto entry = framed_entry ? self->open(framed_entry->bytes, framed_entry->format, 'e') : std::nullopt;
    if (!entry) {
      // Raft retries the apply at every commit: said once.
      if (!std::exchange(self->apply_failed, true))
        spdlog::critical("replication: group {}: an entry of {} bytes {}; this member applies nothing more",
                         self->settings.group, buf->len,
                         framed_entry ? "does not open (sealed under another key, or the members disagree on "
                                        "whether entries are sealed)"
                                      : "is not framed as ours");
      return RAFT_MALFORMED;
    }
    self->machine.apply(raft_last_applied(&self->raft) + 1, *entry);
    *result = nullptr;
    return 0;
  }

  static int fsm_snapshot(struct raft_fsm* f, struct raft_buffer* bufs[], unsigned* n) {
    auto sealed = of(f)->seal(of(f)->machine.snapshot(), 's');
    if (!sealed)
      return RAFT_NOMEM;
    auto state = std::string(1, static_cast<char>(of(f)->format())) + *sealed;
    *bufs = static_cast<struct raft_buffer*>(raft_malloc(sizeof(struct raft_buffer)));
    if (!*bufs)
      return RAFT_NOMEM;
    (*bufs)[0].len = state.size();
    (*bufs)[0].base = raft_malloc(std::max<size_t>(state.size(), 1));
    if (!(*bufs)[0].base) {
      raft_free(*bufs);
      return RAFT_NOMEM;
    }
    std::memcpy((*bufs)[0].base, state.data(), state.size());
    *n = 1;
    return 0;
  }

  static int fsm_restore(struct raft_fsm* f, struct raft_buffer* buf) {
    auto* self = of(f);
    std::string_view bytes{static_cast<const char*>(buf->base), buf->len};
    auto state = bytes.empty() || static_cast<uint8_t>(bytes[0]) > 1
                     ? std::nullopt
                     : self->open(bytes.substr(1), static_cast<entry_format>(bytes[0]), 's');
    if (!state || !self->machine.restore(*state)) {
      spdlog::critical("replication: group {}: a snapshot of {} bytes {}", self->settings.group, buf->len,
                       state ? "was not restored by the state machine" : "does not open under this member's key");
      return RAFT_MALFORMED;
    }
    raft_free(buf->base);  // ours once restored
    return 0;
  }

  // ---- the loop ----

  void propose(std::string entry, committed_fn done) {
    if (stopping) {
      done({0, 0, "the group is stopping"});
      return;
    }
    if (raft_state(&raft) != RAFT_LEADER) {
      auto leader = leader_name();
      done({0, 0, leader.empty() ? "no leader" : "not the leader (" + leader + " leads)"});
      return;
    }
    auto sealed = seal(entry, 'e');
    if (!sealed) {
      done({0, 0, "the entry could not be sealed"});
      return;
    }
    auto buf = framed(*sealed, format());
    auto* p = new proposal;
    p->req.data = p;
    p->done = std::move(done);
    p->term = raft.current_term;
    auto rv = raft_apply(&raft, &p->req, &buf, 1, [](struct raft_apply* req, int status, void*) {
      auto* p = static_cast<proposal*>(req->data);
      p->done(outcome(status, req->index, p->term));
      delete p;
    });
    if (rv != 0) {
      raft_free(buf.base);
      p->done({0, p->term, raft_strerror(rv)});
      delete p;
    }
  }

  void barrier(committed_fn done) {
    if (stopping || raft_state(&raft) != RAFT_LEADER) {
      done({0, 0, "not the leader"});
      return;
    }
    struct pending {
      struct raft_barrier req;
      committed_fn done;
      uint64_t term;
    };
    auto* p = new pending{{}, std::move(done), raft.current_term};
    p->req.data = p;
    auto rv = raft_barrier(&raft, &p->req, [](struct raft_barrier* req, int status) {
      auto* p = static_cast<pending*>(req->data);
      p->done(outcome(status, req->index, p->term));
      delete p;
    });
    if (rv != 0) {
      p->done({0, p->term, raft_strerror(rv)});
      delete p;
    }
  }

  // Every half second: a leader that is not the group's home hands
  // leadership to it (raft refuses while the home is behind or away). It
  // first commits an entry of its own term: the home may hold entries of an
  // earlier term that were never committed (it led, then crashed), and
  // raft hands over only to a member whose log ends where the leader's does
  // — the barrier replaces those entries.
  void offer_leadership() {
    if (stopping || transferring || settings.home.empty() || raft_state(&raft) != RAFT_LEADER ||
        settings.home == tunnels.self() || !member(settings.home))
      return;
    if (barrier_term != raft.current_term) {
      barrier_term = raft.current_term;
      barrier([](const raft_commit&) {});
      return;
    }
    // Only to a home whose log ends where this leader's does: raft refuses
    // new entries while a transfer is under way, so an offer to a home that
    // is away or cut off (it never catches up) would stall every write for
    // an election timeout, twice a second.
    if (home_caught_up())
      transfer_to(raft_id_of(settings.home));
  }

  // Hands leadership to voter `id` (0: the most up-to-date one), one
  // hand-over at a time.
  void transfer_to(raft_id id) {
    if (stopping || transferring || raft_state(&raft) != RAFT_LEADER)
      return;
    transferring = true;
    transfer.data = this;
    if (raft_transfer(&raft, &transfer, id, [](struct raft_transfer* t) {
          static_cast<impl*>(t->data)->transferring = false;
        }) != 0)
      transferring = false;
  }

  bool home_caught_up() {
    auto home = raft_id_of(settings.home);
    for (unsigned i = 0; i < raft.configuration.n; ++i)
      if (raft.configuration.servers[i].id == home)
        return raft.leader_state.progress[i].match_index == raft_last_index(&raft) &&
               raft.leader_state.progress[i].recent_recv;
    return false;
  }

  // The leader this member knows of; empty when none.
  std::string leader_name() {
    raft_id id = 0;
    const char* leader = nullptr;
    raft_leader(&raft, &id, &leader);
    return leader ? leader : "";
  }

  // A request's outcome: committed at `index`, or failed after raft took it
  // (in doubt).
  static raft_commit outcome(int status, uint64_t index, uint64_t term) {
    return status == 0 ? raft_commit{index, term, {}, false} : raft_commit{0, term, raft_strerror(status), true};
  }

  raft_status status() {
    raft_status s;
    s.leading = raft_state(&raft) == RAFT_LEADER;
    s.term = raft.current_term;
    s.leader = leader_name();
    s.commit_index = raft.commit_index;
    s.applied_index = raft_last_applied(&raft);
    return s;
  }

  void close() {
    if (stopping)
      return;
    stopping = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&home_timer), nullptr);
    raft_close(&raft, [](struct raft* r) {
      auto* self = static_cast<impl*>(r->fsm->data);
      raft_uv_close(&self->io);
      // Whatever is still queued runs now, against a closed group.
      for (auto& task : self->box->close())
        task();
      uv_close(reinterpret_cast<uv_handle_t*>(&self->wake), nullptr);
    });
  }

  void run_tasks() {
    for (auto& task : box->take())
      task();
  }
};

raft_group::raft_group(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

std::unique_ptr<raft_group> raft_group::start(const raft_group_settings& s, raft_tunnels& tunnels,
                                              raft_state_machine& machine, std::string& why) {
  auto self = tunnels.self();
  if (std::none_of(s.members.begin(), s.members.end(), [&](auto& m) { return m.name == self; })) {
    why = "member " + self + " is not among the group's members";
    return nullptr;
  }
  std::error_code ec;
  std::filesystem::create_directories(s.dir, ec);
  if (ec) {
    why = "cannot create " + s.dir + ": " + ec.message();
    return nullptr;
  }
  // libuv writes a tunnel's local end with write(2): a peer that went away
  // must fail the write (raft reconnects), not raise SIGPIPE and end the node.
  std::signal(SIGPIPE, SIG_IGN);
  auto i = std::make_unique<impl>(s, tunnels, machine);
  uv_loop_init(&i->loop);
  i->wake.data = i.get();
  uv_async_init(&i->loop, &i->wake, [](uv_async_t* a) { static_cast<impl*>(a->data)->run_tasks(); });
  i->transport.impl = i.get();
  i->transport.init = impl::transport_init;
  i->transport.listen = impl::transport_listen;
  i->transport.connect = impl::transport_connect;
  i->transport.close = impl::transport_close;
  i->fsm.version = 1;
  i->fsm.data = i.get();
  i->fsm.apply = impl::fsm_apply;
  i->fsm.snapshot = impl::fsm_snapshot;
  i->fsm.restore = impl::fsm_restore;

  if (auto rv = raft_uv_init(&i->io, &i->loop, s.dir.c_str(), &i->transport); rv != 0) {
    why = "raft io in " + s.dir + ": " + i->io.errmsg;
    uv_close(reinterpret_cast<uv_handle_t*>(&i->wake), nullptr);
    uv_run(&i->loop, UV_RUN_DEFAULT);
    uv_loop_close(&i->loop);
    return nullptr;
  }
  // From here on the group closes through raft_close (its destructor).
  std::unique_ptr<raft_group> group{new raft_group(std::move(i))};
  auto& g = *group->impl_;
  if (auto rv = raft_init(&g.raft, &g.io, &g.fsm, raft_id_of(self), self.c_str()); rv != 0) {
    why = "raft init in " + s.dir + ": " + g.raft.errmsg;
    raft_uv_close(&g.io);
    uv_close(reinterpret_cast<uv_handle_t*>(&g.wake), nullptr);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    uv_loop_close(&g.loop);
    group->impl_.reset();
    return nullptr;
  }
  raft_set_election_timeout(&g.raft, static_cast<unsigned>(s.election_timeout.count()));
  raft_set_heartbeat_timeout(&g.raft, static_cast<unsigned>(s.heartbeat.count()));
  raft_set_pre_vote(&g.raft, true);
  raft_set_snapshot_threshold(&g.raft, s.snapshot_threshold);
  raft_set_snapshot_trailing(&g.raft, s.snapshot_trailing);
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (auto& m : s.members)
    raft_configuration_add(&conf, raft_id_of(m.name), m.name.c_str(), RAFT_VOTER);
  auto rv = raft_bootstrap(&g.raft, &conf);
  raft_configuration_close(&conf);
  if (rv != 0 && rv != RAFT_CANTBOOTSTRAP)
    why = "raft bootstrap in " + s.dir + ": " + raft_errmsg(&g.raft);
  else if (rv = raft_start(&g.raft); rv != 0)
    why = "raft start in " + s.dir + ": " + raft_errmsg(&g.raft);
  uv_timer_init(&g.loop, &g.home_timer);
  g.home_timer.data = &g;
  uv_timer_start(&g.home_timer, [](uv_timer_t* t) { static_cast<impl*>(t->data)->offer_leadership(); }, 500, 500);
  g.thread = std::thread{[&g] { uv_run(&g.loop, UV_RUN_DEFAULT); }};
  if (!why.empty())
    return nullptr;  // the destructor closes what was opened
  return group;
}

raft_group::~raft_group() {
  if (!impl_)
    return;
  auto* i = impl_.get();
  if (!i->box->post([i] { i->close(); }))
    spdlog::error("replication: group {} was already closed", i->settings.group);
  i->thread.join();
  uv_loop_close(&i->loop);
}

void raft_group::propose(std::string entry, committed_fn done) {
  auto* i = impl_.get();
  auto shared = std::make_shared<committed_fn>(std::move(done));
  if (!i->box->post([i, e = std::move(entry), shared]() mutable { i->propose(std::move(e), std::move(*shared)); }))
    (*shared)({0, 0, "the group is stopping"});
}

void raft_group::hand_over() {
  auto* i = impl_.get();
  i->box->post([i] { i->transfer_to(0); });
}

void raft_group::barrier(committed_fn done) {
  auto* i = impl_.get();
  auto shared = std::make_shared<committed_fn>(std::move(done));
  if (!i->box->post([i, shared]() mutable { i->barrier(std::move(*shared)); }))
    (*shared)({0, 0, "the group is stopping"});
}

raft_status raft_group::status() const {
  auto* i = impl_.get();
  auto answer = std::make_shared<std::promise<raft_status>>();
  auto future = answer->get_future();
  if (!i->box->post([i, answer] { answer->set_value(i->status()); }))
    return {};
  return future.get();
}

}  // namespace healthtwin::services
