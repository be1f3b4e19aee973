#include <deque>
#include <grpcpp/support/message_allocator.h>
#include <mutex>

#include "actors/ingest/ingest_sequencer.hpp"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "services/grpc/ingest_validation.hpp"
#include "services/grpc/service_env.hpp"
#include "services/grpc/status_mapping.hpp"

namespace healthtwin::services {

namespace {

namespace v1 = healthtwin::v1;

ingest_limits limits_of(const api_settings& s) {
  return ingest_limits{s.max_readings_per_request, s.max_request_bytes, s.max_clock_skew.count()};
}

grpc::Status refusal(const validated_ingest& v) {
  std::vector<field_violation> bad;
  for (auto& [field, why] : v.violations)
    bad.push_back({field, why});
  return invalid_argument(bad);
}

// Merges the stateless and the sequencer's rejections, in request order.
void fill_response(uint64_t batch_id, std::vector<actors::reading_rejection>&& pre,
                   actors::ingest_result&& r, v1::IngestResponse* out) {
  out->set_batch_id(batch_id);
  out->set_accepted(r.accepted);
  auto& all = pre;
  all.insert(all.end(), std::make_move_iterator(r.rejections.begin()),
             std::make_move_iterator(r.rejections.end()));
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  out->mutable_rejections()->Reserve(static_cast<int>(all.size()));
  for (auto& x : all) {
    auto* rej = out->add_rejections();
    rej->set_index(x.index);
    rej->set_field(std::move(x.field));
    rej->set_reason(static_cast<v1::RejectionReason>(x.reason));
    rej->set_description(std::move(x.description));
  }
}

// What an ingest request touches, for the access check and the audit entry:
// its tenant (a marker when readings name several) and device ids. Names
// that do not parse are rejected per reading and touch nothing.
call_scope ingest_scope(const v1::IngestRequest& req, std::string& resource) {
  call_scope scope;
  std::string_view single_device;
  for (auto& r : req.devices()) {
    auto name = models::parse_twin_name(r.device());
    if (!name || name->kind != models::twin_kind::device)
      continue;
    if (scope.devices.empty()) {
      scope.tenant = name->tenant;
      single_device = r.device();
    } else if (name->tenant != scope.tenant) {
      scope.tenant = "(several tenants)";
    } else if (r.device() != single_device) {
      single_device = {};
    }
    scope.devices.push_back(name->id);
  }
  // No name parses: every reading is rejected INVALID_NAME, as it would
  // be beside a valid group, and nothing is touched.
  scope.touches_nothing = scope.devices.empty();
  resource = !single_device.empty() ? std::string{single_device}
             : scope.touches_nothing ? std::string{}
                                     : "tenants/" + std::string{scope.tenant};
  return scope;
}

/// Requests a stream reads into, kept for reuse: parsing into a cleared
/// message reuses its sub-messages and arrays, where a fresh 1,000-reading
/// batch costs some 850 allocations (an edge hands every batch on and
/// reads the next into a new one). Thread-safe; shared with the requests
/// handed on, which come back when their last holder lets go.
class request_pool : public std::enable_shared_from_this<request_pool> {
public:
  std::unique_ptr<v1::IngestRequest> take() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (free_.empty())
      return std::make_unique<v1::IngestRequest>();
    auto r = std::move(free_.back());
    free_.pop_back();
    return r;
  }

  /// `r` for sharing; cleared and kept here once nobody holds it.
  std::shared_ptr<v1::IngestRequest> share(std::unique_ptr<v1::IngestRequest> r) {
    return {r.release(), [pool = shared_from_this()](v1::IngestRequest* x) { pool->give_back(x); }};
  }

private:
  void give_back(v1::IngestRequest* x) {
    std::unique_ptr<v1::IngestRequest> r{x};
    r->Clear();
    std::lock_guard<std::mutex> guard{mtx_};
    if (free_.size() < max_kept)
      free_.push_back(std::move(r));
  }

  static constexpr size_t max_kept = 32;  // > the batches a stream has in flight
  std::mutex mtx_;
  std::vector<std::unique_ptr<v1::IngestRequest>> free_;
};

/// One bidirectional ingest stream: reads batches, submits each to the
/// sequencer, and writes acks in request order as commits complete. Reading
/// pauses while max_stream_in_flight batches await their ack. State changes
/// happen under the mutex; Start*/Finish calls are made after releasing it,
/// since gRPC may run a reaction inline.
class ingest_stream final : public grpc::ServerBidiReactor<v1::IngestRequest, v1::IngestResponse>,
                            public drainable {
  struct answer;  // a batch awaiting its ack

public:
  ingest_stream(service_env& env, grpc::CallbackServerContext* call) : env_(env), call_(call) {
    ++env_.active_calls;
    {
      std::lock_guard<std::mutex> guard{env_.streams_mtx};
      env_.streams.insert(this);
    }
    auto st = env_.admit(call_, rc_);
    if (!st.ok()) {
      finished_ = true;
      env_.ctx.audit->append_async(env_.audit_entry_for(call_, rc_, st),
                                   [this, st](const caf::error& err) { Finish(audit_outcome(st, err)); });
      return;
    }
    StartRead(request_.get());
  }

  std::function<void()> drain() override {
    auto a = std::make_shared<actions>(end_reads(std::make_unique<grpc::Status>(retry_later(
        grpc::StatusCode::UNAVAILABLE, refusal::shutting_down, "node is shutting down; resend unacknowledged batches",
        std::chrono::milliseconds(1000)))));
    return [this, a] { act(std::move(*a)); };
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      act(end_reads(nullptr));
      return;
    }
    if (env_.stopping) {
      act(end_reads(std::make_unique<grpc::Status>(retry_later(
          grpc::StatusCode::UNAVAILABLE, refusal::shutting_down, "node is shutting down; resend unacknowledged batches",
          std::chrono::milliseconds(1000)))));
      return;
    }
    // request_ is only touched by reads, which never overlap.
    auto v = validate_ingest(*request_, service_env::now_ms(), limits_of(env_.settings));
    if (!v.violations.empty()) {
      // A malformed batch ends the stream once earlier batches are acked.
      act(end_reads(std::make_unique<grpc::Status>(refusal(v))));
      return;
    }
    // Each batch is checked and audited on its own (rc_ holds the caller).
    auto batch = std::make_shared<rpc_call>(rc_);
    auto scope = ingest_scope(*request_, batch->resource);
    auto st = batch->allow(scope);
    if (st.ok())
      st = env_.within_rate(*batch->who, v.readings + v.rejections.size());
    if (!st.ok()) {
      // Refused: on record, and the stream ends after the earlier acks.
      env_.ctx.audit->append_async(env_.audit_entry_for(call_, *batch, st), [](const caf::error&) {});
      act(end_reads(std::make_unique<grpc::Status>(st)));
      return;
    }
    // Done with request_ before reads may resume: once read_paused_ is set
    // below, an ack on another thread may start the next read into it.
    auto batch_id = request_->batch_id();
    // In a cluster the request may go on to its owner as it is: take it
    // (the next read goes into another one from the pool).
    std::shared_ptr<v1::IngestRequest> whole;
    if (env_.ctx.forwarding && v.rejections.empty()) {
      whole = pool_->share(std::move(request_));
      request_ = pool_->take();
    }
    bool read_more;
    answer* slot;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ++outstanding_;
      read_more = outstanding_ < env_.settings.max_stream_in_flight;
      read_paused_ = !read_more;
      slot = &answers_.emplace_back();  // acks go out in this order
    }
    env_.submit_ingest(
        call_, std::move(v.groups), v.readings,
        [this, slot, batch_id, batch, pre = std::move(v.rejections)](actors::ingest_result&& r) mutable {
          // Acked only once the batch's audit entry is durable too. In a
          // cluster, batches complete out of order (their owners differ):
          // on_committed puts the acks back in request order.
          auto st = r.error ? to_status(r.error) : grpc::Status::OK;
          env_.ctx.audit->append_async(
              env_.audit_entry_for(call_, *batch, st), [this, slot, batch_id, pre = std::move(pre), r = std::move(r)](const caf::error& err) mutable {
                if (err && !r.error)
                  r.error = err;
                on_committed(slot, batch_id, std::move(pre), std::move(r));
              });
        },
        std::move(whole));
    if (read_more)
      StartRead(request_.get());
  }

  void OnWriteDone(bool ok) override {
    actions a;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      acks_.pop_front();
      if (!ok) {
        broken_ = true;
        acks_.clear();
      }
      if (!acks_.empty())
        a.write = true;
      else
        writing_ = false;
      decide_finish(a);
    }
    act(std::move(a));
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> guard{mtx_};
    broken_ = true;
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> guard{env_.streams_mtx};
      env_.streams.erase(this);
    }
    --env_.active_calls;
    delete this;
  }

private:
  struct actions {
    bool write = false;
    bool read = false;
    std::unique_ptr<grpc::Status> finish;
  };

  void act(actions a) {
    if (a.write)
      StartWrite(&acks_.front());  // stable: only OnWriteDone pops it
    if (a.read)
      StartRead(request_.get());
    if (a.finish)
      Finish(*a.finish);
  }

  // Under mtx_: finish once every read ended and every ack is written.
  void decide_finish(actions& a) {
    if (finished_ || !reads_done_ || outstanding_ > 0 || writing_)
      return;
    finished_ = true;
    a.finish = std::make_unique<grpc::Status>(final_status_ ? *final_status_ : grpc::Status::OK);
  }

  actions end_reads(std::unique_ptr<grpc::Status> status) {
    actions a;
    std::lock_guard<std::mutex> guard{mtx_};
    if (status && !final_status_)
      final_status_ = std::move(status);
    reads_done_ = true;
    decide_finish(a);
    return a;
  }

  void on_committed(answer* slot, uint64_t batch_id, std::vector<actors::reading_rejection>&& pre,
                    actors::ingest_result&& r) {
    actions a;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      --outstanding_;
      slot->done = true;
      if (r.error) {
        // Not written: end the stream with the reason after the acks before
        // it, rather than skip an ack the client waits for.
        slot->failed = true;
        if (!final_status_)
          final_status_ = std::make_unique<grpc::Status>(to_status(r.error));
        reads_done_ = true;
      } else {
        fill_response(batch_id, std::move(pre), std::move(r), &slot->ack);
      }
      // Acks in request order: every answered batch at the front.
      while (!answers_.empty() && answers_.front().done) {
        if (!answers_.front().failed && !broken_) {
          acks_.push_back(std::move(answers_.front().ack));
          if (!writing_)
            writing_ = a.write = true;
        }
        answers_.pop_front();
      }
      if (read_paused_ && !reads_done_ && outstanding_ < env_.settings.max_stream_in_flight) {
        read_paused_ = false;
        a.read = true;
      }
      decide_finish(a);
    }
    act(std::move(a));
  }

  service_env& env_;
  grpc::CallbackServerContext* call_;
  rpc_call rc_{"IngestService/StreamIngest"};
  std::mutex mtx_;
  std::shared_ptr<request_pool> pool_ = std::make_shared<request_pool>();
  std::unique_ptr<v1::IngestRequest> request_ = pool_->take();
  // A batch read and not yet acknowledged, in request order; deque
  // elements stay put while others are added or removed at the ends.
  struct answer {
    bool done = false;
    bool failed = false;
    v1::IngestResponse ack;
  };
  std::deque<answer> answers_;
  std::deque<v1::IngestResponse> acks_;  // front is being written
  std::unique_ptr<grpc::Status> final_status_;
  uint32_t outstanding_ = 0;
  bool reads_done_ = false;
  bool read_paused_ = false;
  bool writing_ = false;
  bool broken_ = false;
  bool finished_ = false;
};

/// The request and answer of unary Ingest calls, kept for reuse as the
/// stream's requests are (an edge sends every batch it hands on as one
/// such call, so its owner would otherwise allocate each afresh).
class unary_ingest_allocator final
    : public grpc::MessageAllocator<v1::IngestRequest, v1::IngestResponse> {
  struct holder final : grpc::MessageHolder<v1::IngestRequest, v1::IngestResponse> {
    explicit holder(unary_ingest_allocator& a) : owner(a) {
      set_request(&request);
      set_response(&response);
    }
    void Release() override { owner.give_back(this); }
    unary_ingest_allocator& owner;
    v1::IngestRequest request;
    v1::IngestResponse response;
  };

public:
  ~unary_ingest_allocator() override {
    for (auto* h : free_)
      delete h;
  }

  grpc::MessageHolder<v1::IngestRequest, v1::IngestResponse>* AllocateMessages() override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (free_.empty())
      return new holder(*this);
    auto* h = free_.back();
    free_.pop_back();
    return h;
  }

private:
  void give_back(holder* h) {
    h->request.Clear();
    h->response.Clear();
    std::lock_guard<std::mutex> guard{mtx_};
    if (free_.size() < max_kept)
      free_.push_back(h);
    else
      delete h;
  }

  static constexpr size_t max_kept = 512;  // > the calls gRPC runs at once
  std::mutex mtx_;
  std::vector<holder*> free_;
};

class ingest_service final : public v1::IngestService::CallbackService {
public:
  explicit ingest_service(service_env& env) : env_(env) {
    SetMessageAllocatorFor_Ingest(&allocator_);
  }

  grpc::ServerUnaryReactor* Ingest(grpc::CallbackServerContext* call,
                                   const v1::IngestRequest* req,
                                   v1::IngestResponse* resp) override {
    auto* reactor = call->DefaultReactor();
    ++env_.active_calls;  // until the answer is sent
    auto rc = std::make_shared<rpc_call>("IngestService/Ingest");
    auto* env = &env_;
    // Every answer goes out once its audit entry is durable.
    auto finish = [env, reactor, call, rc](const grpc::Status& st) {
      env->ctx.audit->append_async(env->audit_entry_for(call, *rc, st),
                                   [env, reactor, st](const caf::error& err) {
                                     reactor->Finish(audit_outcome(st, err));
                                     --env->active_calls;
                                   });
    };
    auto st = env_.admit(call, *rc);
    if (st.ok()) {
      auto v = validate_ingest(*req, service_env::now_ms(), limits_of(env_.settings));
      if (!v.violations.empty())
        st = refusal(v);
      else
        st = rc->allow(ingest_scope(*req, rc->resource));
      if (st.ok())
        st = env_.within_rate(*rc->who, v.readings + v.rejections.size());
      if (st.ok()) {
        auto batch_id = req->batch_id();
        // The request outlives the call's answer: sent on without a copy.
        std::shared_ptr<const v1::IngestRequest> whole;
        if (v.rejections.empty())
          whole = std::shared_ptr<const v1::IngestRequest>{std::shared_ptr<void>{}, req};
        env_.submit_ingest(
            call, std::move(v.groups), v.readings,
            [finish, resp, batch_id, pre = std::move(v.rejections)](actors::ingest_result&& r) mutable {
              if (r.error) {
                finish(to_status(r.error));
                return;
              }
              fill_response(batch_id, std::move(pre), std::move(r), resp);
              finish(grpc::Status::OK);
            },
            std::move(whole));
        return reactor;
      }
    }
    finish(st);
    return reactor;
  }

  grpc::ServerBidiReactor<v1::IngestRequest, v1::IngestResponse>* StreamIngest(
      grpc::CallbackServerContext* call) override {
    return new ingest_stream(env_, call);
  }

private:
  service_env& env_;
  unary_ingest_allocator allocator_;  // outlives the server: the service does
};

}  // namespace

std::unique_ptr<grpc::Service> make_ingest_service(service_env& env) {
  return std::make_unique<ingest_service>(env);
}

}  // namespace healthtwin::services
