// TwinService's two server streams, pushed: a twin now, then each change
// as its twin reports it (actors/index/twin_changes), no more often than
// the watch's min_interval, read on the pump's thread (watch_pump.hpp) and
// written by gRPC's callback API — no thread and no polling per watch. In
// a cluster the owner's stream is relayed, read with gRPC's callback
// client (no thread either).

#include <atomic>
#include <optional>
#include <unordered_map>

#include <google/protobuf/util/message_differencer.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "services/grpc/twin_reads.hpp"

namespace healthtwin::services {

namespace {

using clock = watch_pump::clock;
using google::protobuf::FieldMask;
using grpc::Status;

clock::time_point steady(std::chrono::system_clock::time_point t) {
  return clock::now() + std::chrono::duration_cast<clock::duration>(t - std::chrono::system_clock::now());
}

// One watch: a callback stream that reads its twin when told it changed (or
// relays another member's stream), until the caller cancels (CANCELLED),
// the node stops (CANCELLED), the read fails, or the caller's deadline (OK).
template <class Twin>
class twin_watch final : public grpc::ServerWriteReactor<Twin>,
                         public pumped,
                         public drainable,
                         public std::enable_shared_from_this<twin_watch<Twin>> {
public:
  using read_fn = std::function<Status(Twin*)>;
  /// When a twin read now changes by itself (a device turns offline).
  using expiry_fn = std::function<std::optional<int64_t>(const Twin&)>;

  twin_watch(service_env& env, grpc::CallbackServerContext* call, std::string_view rpc)
      : env_(env), call_(call), rc_(rpc), deadline_(call->deadline()) {
    ++env_.active_calls;
  }

  /// The frame of the call (what serve() is to a synchronous one): request
  /// id, admission, rate, then `open(rc)` — its checks, then watch() or
  /// relay(); a refusal finishes the call (audited) at once.
  template <class Open>
  grpc::ServerWriteReactor<Twin>* start(Open&& open) {
    self_ = this->shared_from_this();
    call_->AddInitialMetadata(std::string{request_id_header}, service_env::request_id_of(call_));
    auto st = env_.admit(call_, rc_);
    if (st.ok())
      st = env_.within_rate(*rc_.who);
    if (st.ok())
      st = take_slot();
    if (st.ok())
      st = open(rc_);
    if (!st.ok())
      finish(std::move(st));
    return this;
  }

  /// Reads `read` now and whenever `name` changes.
  Status watch(const std::string& name, std::chrono::milliseconds interval, const FieldMask& mask, read_fn read,
               expiry_fn expiry = {}) {
    if (auto st = env_.audit_stream_opened(call_, rc_); !st.ok())
      return st;
    interval_ = interval;
    mask_ = mask;
    name_ = name;
    read_ = std::move(read);
    expiry_ = std::move(expiry);
    std::weak_ptr<twin_watch> weak = this->shared_from_this();
    subscription_ = env_.ctx.changes->subscribe(name, [weak] {
      if (auto w = weak.lock())
        w->changed();
    });
    opened();
    std::lock_guard<std::mutex> guard{mtx_};
    schedule(clock::now());
    if (deadline_ != std::chrono::system_clock::time_point::max())
      env_.watches.at(steady(deadline_), weak, watch_pump::urgency::time);  // ends it there
    return Status::OK;
  }

  /// Relays the owner's stream: `open(stubs, context, reactor)` starts the
  /// same watch there with gRPC's callback client.
  template <class Open>
  Status relay(std::string_view name, Open&& open) {
    auto r = env_.route(call_, name);
    if (!r)
      return owner_routing::not_owner_here("name");  // it moved here meanwhile: the caller retries
    if (r->refusal)
      return *r->refusal;
    if (auto st = env_.audit_stream_opened(call_, rc_); !st.ok())
      return st;
    opened();
    env_.prepare_forwarded(call_, relay_ctx_, true);
    auto* reader = new relay_reader(this->shared_from_this(), r->stubs, r->where);  // deletes itself
    open(*r->stubs, relay_ctx_, reader);
    reader->start();
    return Status::OK;
  }

  void refresh() override {
    std::unique_lock<std::mutex> lock{mtx_};
    scheduled_ = false;
    if (finished_)
      return;
    if (env_.stopping)
      return finish_locked(Status(grpc::StatusCode::CANCELLED, "the watch ended"));
    if (deadline_ <= std::chrono::system_clock::now())
      return finish_locked(Status::OK);  // watched until the caller's deadline
    if (writing_) {
      dirty_ = true;  // read again once the message in flight is written
      return;
    }
    lock.unlock();
    Twin twin;
    auto st = read_shared(&twin);
    lock.lock();
    if (finished_)
      return;
    if (!st.ok())
      return finish_locked(std::move(st));
    if (expiry_)
      if (auto at = expiry_(twin))
        env_.watches.at(clock::now() + std::chrono::milliseconds(std::max<int64_t>(0, *at - service_env::now_ms())),
                        this->weak_from_this(), watch_pump::urgency::time);
    apply_read_mask(mask_, &twin);
    if (last_ && google::protobuf::util::MessageDifferencer::Equals(*last_, twin))
      return;
    last_ = twin;
    write_locked(std::move(twin));
  }

  std::function<void()> drain() override {
    return [self = this->shared_from_this()] {
      std::lock_guard<std::mutex> guard{self->mtx_};
      self->finish_locked(Status(grpc::StatusCode::CANCELLED, "the watch ended"));
    };
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> guard{mtx_};
    writing_ = false;
    if (!ok)
      return finish_locked(Status::OK);  // the caller went away
    if (pending_end_)
      return finish_locked(std::move(*pending_end_));
    if (queued_) {  // relayed: the latest message from the owner
      auto next = std::move(*queued_);
      queued_.reset();
      return write_locked(std::move(next));
    }
    if (dirty_) {
      dirty_ = false;
      schedule(clock::now());
    }
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> guard{mtx_};
    finish_locked(Status(grpc::StatusCode::CANCELLED, "the watch ended"));
  }

  void OnDone() override {
    if (!slot_.empty())
      env_.watches.give(slot_);
    if (subscription_)
      env_.ctx.changes->unsubscribe(subscription_);
    if (listed_) {
      std::lock_guard<std::mutex> guard{env_.streams_mtx};
      env_.streams.erase(this);
      if (auto* g = env_.watches.metrics.open[kind()])
        g->Decrement();
    }
    (void)env_.audited(call_, rc_, outcome_);
    --env_.active_calls;
    self_.reset();  // the pump, a listener or the relay may hold it a little longer
  }

private:
  // Reads the owner's stream and hands each message on; ends the watch
  // with the owner's status (UNAVAILABLE when the owner went away).
  class relay_reader final : public grpc::ClientReadReactor<Twin> {
  public:
    relay_reader(std::shared_ptr<twin_watch> watch, std::shared_ptr<owner_stubs> stubs, std::string where)
        : watch_(std::move(watch)), stubs_(std::move(stubs)), where_(std::move(where)) {}
    void start() {
      this->StartRead(&msg_);
      this->StartCall();
    }
    void OnReadDone(bool ok) override {
      if (!ok)
        return;  // OnDone follows
      watch_->deliver(msg_);
      this->StartRead(&msg_);
    }
    void OnDone(const grpc::Status& done) override {
      auto st = done;
      bool ended = watch_->ended();
      if (st.error_code() == grpc::StatusCode::CANCELLED && !ended)
        st = owner_routing::owner_unreachable(where_, st.error_message());  // the owner went away
      else if (!ended)
        st = owner_routing::owner_answer(std::move(st), where_);
      watch_->end_after_writes(std::move(st));
      delete this;
    }

  private:
  public:
    std::unique_ptr<google::protobuf::Message> request;  // valid for the call's life

  private:
    std::shared_ptr<twin_watch> watch_;
    std::shared_ptr<owner_stubs> stubs_;  // the channel outlives the call
    std::string where_;
    Twin msg_;
  };

  // One of the open watches its principal and the node may hold.
  Status take_slot() {
    auto principal = rc_.who->tenant + "/" + rc_.who->subject;
    auto& s = env_.settings;
    if (!env_.watches.take(principal, s.max_watches_per_principal, s.max_watches))
      return retry_later(grpc::StatusCode::RESOURCE_EXHAUSTED, refusal::watch_limit,
                         "too many open twin watches (at most " + std::to_string(s.max_watches_per_principal) +
                             " per caller and " + std::to_string(s.max_watches) +
                             " per node): close some, or watch from fewer places",
                         std::chrono::milliseconds(5000));
    slot_ = std::move(principal);
    return Status::OK;
  }

  static constexpr int kind() { return std::is_same_v<Twin, v1::PatientTwin> ? 0 : 1; }

  // Listed for the node's stop (drain) once opened.
  void opened() {
    std::lock_guard<std::mutex> guard{env_.streams_mtx};
    env_.streams.insert(this);
    listed_ = true;
    if (auto* g = env_.watches.metrics.open[kind()])
      g->Increment();
  }

  // A change: read again, no sooner than interval after the last message.
  void changed() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (finished_)
      return;
    if (writing_) {
      dirty_ = true;
      return;
    }
    schedule(std::max(clock::now(), next_allowed_));
  }

  void schedule(clock::time_point when) {
    if (scheduled_)
      return;
    scheduled_ = true;
    env_.watches.at(when, this->weak_from_this());
  }

  void write_locked(Twin twin) {
    out_ = std::move(twin);
    writing_ = true;
    next_allowed_ = clock::now() + interval_;
    this->StartWrite(&out_);
  }

  // A message of the owner (relay): written now, or after the one in flight.
  void deliver(const Twin& m) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (finished_)
      return;
    if (writing_)
      queued_ = m;  // only the latest state matters
    else
      write_locked(m);
  }

  void end_after_writes(Status st) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (writing_ || queued_)
      pending_end_ = std::move(st);
    else
      finish_locked(std::move(st));
  }

  bool ended() {
    std::lock_guard<std::mutex> guard{mtx_};
    return finished_;
  }

  // read_ once per twin and pump batch: the watches of one twin due
  // together (a change, or hundreds of alerts raised at once) share a read.
  Status read_shared(Twin* twin) {
    thread_local struct {
      uint64_t batch = ~uint64_t{0};
      std::unordered_map<std::string, std::pair<Status, Twin>> twins;
    } reads;  // the pump's thread only
    if (reads.batch != env_.watches.batch()) {
      reads.twins.clear();
      reads.batch = env_.watches.batch();
    }
    auto [it, fresh] = reads.twins.try_emplace(name_);
    if (fresh) {
      it->second.first = read_(&it->second.second);
      if (auto* c = env_.watches.metrics.reads[kind()])
        c->Increment();
    }
    *twin = it->second.second;
    return it->second.first;
  }

  void finish_locked(Status st) {
    if (finished_)
      return;
    finished_ = true;
    relay_ctx_.TryCancel();
    outcome_ = st;
    this->Finish(std::move(st));
  }

  void finish(Status st) {
    std::lock_guard<std::mutex> guard{mtx_};
    finish_locked(std::move(st));
  }

  service_env& env_;
  grpc::CallbackServerContext* call_;  // valid until OnDone: not read by the pump
  rpc_call rc_;
  std::chrono::system_clock::time_point deadline_;
  std::shared_ptr<twin_watch> self_;  // until OnDone
  std::chrono::milliseconds interval_{1000};
  FieldMask mask_;
  std::string name_;  // the twin watched (set before the pump sees it)
  read_fn read_;
  expiry_fn expiry_;
  uint64_t subscription_ = 0;
  std::string slot_;  // the principal whose watch slot this holds
  bool listed_ = false;
  grpc::ClientContext relay_ctx_;

  std::mutex mtx_;
  bool finished_ = false, writing_ = false, dirty_ = false, scheduled_ = false;
  clock::time_point next_allowed_{};
  std::optional<Twin> last_, queued_;
  std::optional<Status> pending_end_;
  Twin out_;  // the message being written
  Status outcome_;
};

}  // namespace

grpc::ServerWriteReactor<v1::PatientTwin>* watch_patient_twin(service_env& env, grpc::CallbackServerContext* call,
                                                              const v1::WatchPatientTwinRequest* req) {
  auto w = std::make_shared<twin_watch<v1::PatientTwin>>(env, call, "TwinService/WatchPatientTwin");
  return w->start([&env, call, req, w = w.get()](rpc_call& rc) -> Status {
    std::vector<field_violation> bad;
    auto interval = check_watch<v1::PatientTwin>(*req, bad);
    if (!interval)
      return invalid_argument(bad);
    if (env.owned_elsewhere(req->name())) {  // relayed from its owner
      if (auto st = allow_patient(rc, req->name(), "name"); !st.ok())
        return st;
      auto forwarded = *req;
      return w->relay(req->name(), [forwarded](owner_stubs& s, grpc::ClientContext& c, auto* reader) {
        auto request = std::make_unique<v1::WatchPatientTwinRequest>(forwarded);
        s.twins->async()->WatchPatientTwin(&c, request.get(), reader);
        reader->request = std::move(request);
      });
    }
    if (auto st = check_patient(env, rc, req->name(), "name"); !st.ok())
      return st.error_code() == grpc::StatusCode::NOT_FOUND ? env.stream_elsewhere(call, req->name()).value_or(st) : st;
    return w->watch(req->name(), *interval, req->read_mask(), [&env, name = req->name()](v1::PatientTwin* twin) {
      return read_patient_twin(env, env.settings.call_timeout, name, twin);
    });
  });
}

grpc::ServerWriteReactor<v1::DeviceTwin>* watch_device_twin(service_env& env, grpc::CallbackServerContext* call,
                                                            const v1::WatchDeviceTwinRequest* req) {
  auto w = std::make_shared<twin_watch<v1::DeviceTwin>>(env, call, "TwinService/WatchDeviceTwin");
  return w->start([&env, call, req, w = w.get()](rpc_call& rc) -> Status {
    std::vector<field_violation> bad;
    auto interval = check_watch<v1::DeviceTwin>(*req, bad);
    if (!interval)
      return invalid_argument(bad);
    if (env.owned_elsewhere(req->name())) {  // relayed from its owner
      if (auto st = allow_device(rc, req->name(), "name"); !st.ok())
        return st;
      auto forwarded = *req;
      return w->relay(req->name(), [forwarded](owner_stubs& s, grpc::ClientContext& c, auto* reader) {
        auto request = std::make_unique<v1::WatchDeviceTwinRequest>(forwarded);
        s.twins->async()->WatchDeviceTwin(&c, request.get(), reader);
        reader->request = std::move(request);
      });
    }
    storage::device_record rec;
    if (auto st = find_device(env, rc, req->name(), "name", rec); !st.ok())
      return st.error_code() == grpc::StatusCode::NOT_FOUND ? env.stream_elsewhere(call, req->name()).value_or(st) : st;
    auto read = [&env, name = req->name()](v1::DeviceTwin* twin) {
      // The registry part (shadow, assignment) can change too.
      auto now = storage::registry{*env.ctx.store}.get_device(name);
      if (!now)
        return to_status(now.error());
      if (!*now)
        return Status(grpc::StatusCode::NOT_FOUND, "device not found");
      return read_device_twin(env, env.settings.call_timeout, **now, twin);
    };
    // An online device turns offline by itself when its heartbeat times out.
    auto expiry = [timeout = env.settings.heartbeat_timeout.count()](const v1::DeviceTwin& t) -> std::optional<int64_t> {
      if (!t.online() || !t.has_last_seen_time())
        return std::nullopt;
      return to_ms(t.last_seen_time()) + timeout + 1;
    };
    return w->watch(req->name(), *interval, req->read_mask(), std::move(read), std::move(expiry));
  });
}

}  // namespace healthtwin::services
