// twinsim: patient simulator and load generator for HealthTwin.
//
// Registers N patients (a bedside monitor and an observation chart each,
// some with a glucose monitor) and streams their vitals over gRPC, paced in
// real time (--realtime, the demo) or at a set rate / flat out (load tests),
// unary or streaming, with a set batch size and concurrency. Batches that
// fail are retried with the same sequence numbers until acknowledged.
// Prints progress every second and a report at the end.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "bench/support/process_cpu.hpp"
#include "actors/cluster/shard_map.hpp"
#include "actors/models/twin_name.hpp"
#include "services/grpc/client_channel.hpp"
#include "bench/twinsim/patient_sim.hpp"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "healthtwin/v1/alert.grpc.pb.h"
#include "healthtwin/v1/cluster.grpc.pb.h"
#include "healthtwin/v1/ingest.grpc.pb.h"
#include "healthtwin/v1/registry.grpc.pb.h"

namespace v1 = healthtwin::v1;
using namespace healthtwin;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::atomic<bool> interrupted{false};

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct options {
  std::string target = "127.0.0.1:50051";
  std::string token_file;   // bearer token (service role, or device for one device)
  bool plaintext = false;   // node runs with --insecure-plaintext
  std::string tls_ca_file, tls_cert_file, tls_key_file, tls_server_name;
  std::string tenant = "demo";
  uint32_t patients = 200;
  // Cluster benchmark: only patients whose twins and devices' twins all
  // live on member `owned_by` of `cluster_members` (shard count `shards`).
  std::string owned_by;
  std::vector<std::string> cluster_members;
  uint32_t shards = 1024;
  double rate = 0;  // readings/s over all workers; 0 = flat out
  bool realtime = false;
  double duration_s = 0;  // 0 = until Ctrl-C
  double warmup_s = 0;    // latencies are not recorded before this
  uint32_t batch = 1000;
  uint32_t concurrency = 4;
  std::string mode = "stream";
  uint32_t window = 8;  // batches in flight per stream
  int64_t interval_ms = 1000;
  int64_t linger_ms = 50;  // realtime: send a partial batch after this wait
  int64_t start_offset_s = -1;  // -1: 0 with --realtime, else 24 h
  double glucose_share = 0.2;
  double episodes_per_hour = 0.05;
  double in_episode_share = 0;  // patients that start mid-episode
  uint64_t seed = 1;
  bool do_register = true;
  bool watch = false;
  bool alert_latency = false;
  bool quiet = false;
  std::string acked_log;
  std::string report_json;
  int node_pid = 0;  // set: report the node's CPU per million readings acknowledged while measuring
  uint32_t device_twins = 0;  // memory benchmark mode
  std::string device_phase = "both";  // register, activate or both
};

std::string patient_id(uint32_t i) { return fmt::format("p-{:05}", i); }

// ---- statistics ------------------------------------------------------------------

struct stats {
  std::atomic<uint64_t> sent{0}, acked{0}, rejected{0}, duplicates{0}, retries{0};
  std::atomic<uint64_t> unavailable{0};  // readings rejected UNAVAILABLE, then resent
  std::atomic<uint64_t> exhausted{0};  // answers RESOURCE_EXHAUSTED (overload, rate limits)
  std::atomic<bool> measuring{true};  // false during warm-up
  std::mutex mtx;
  std::vector<double> latency_ms;  // one per acknowledged batch
  std::map<std::string, uint64_t> rejected_by_reason;
  std::vector<double> alert_latency_ms;  // device time of the raising reading -> event received

  void on_ack(double ms) {
    if (!measuring)
      return;
    std::lock_guard<std::mutex> g{mtx};
    latency_ms.push_back(ms);
  }
};

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto idx = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, idx == 0 ? 0 : idx - 1)];
}

// ---- acked readings log (crash test) ------------------------------------------------

class acked_log {
public:
  explicit acked_log(const std::string& path) {
    if (!path.empty())
      out_.open(path, std::ios::app);
  }
  bool enabled() const { return out_.is_open(); }
  void write(const std::string& lines) {
    std::lock_guard<std::mutex> g{mtx_};
    out_ << lines;
    out_.flush();
  }

private:
  std::mutex mtx_;
  std::ofstream out_;
};

// ---- a batch in flight -------------------------------------------------------------

struct pending_batch {
  v1::IngestRequest request;
  std::vector<std::string> reading_patients;  // per reading (acked log only)
  uint32_t readings = 0;
  clock_type::time_point first_sent;
};

/// The readings of `b` rejected UNAVAILABLE (in a cluster, their owner was
/// not reached), as a batch to resend with the same sequence numbers.
pending_batch unavailable_part(const pending_batch& b, const v1::IngestResponse& resp) {
  std::vector<bool> resend(b.readings, false);
  bool any = false;
  for (auto& r : resp.rejections())
    if (r.reason() == v1::REJECTION_REASON_UNAVAILABLE && r.index() < b.readings)
      any = resend[r.index()] = true;
  pending_batch out;
  if (!any)
    return out;
  out.first_sent = b.first_sent;
  uint32_t i = 0;
  for (auto& d : b.request.devices()) {
    v1::DeviceReadings* copy = nullptr;
    for (int k = 0; k < d.sequence_size(); ++k, ++i) {
      if (!resend[i])
        continue;
      if (!copy) {
        copy = out.request.add_devices();
        copy->set_device(d.device());
      }
      copy->add_sequence(d.sequence(k));
      copy->add_time_ms(d.time_ms(k));
      copy->add_metric(d.metric(k));
      copy->add_value(d.value(k));
      if (!b.reading_patients.empty())
        out.reading_patients.push_back(b.reading_patients[i]);
      ++out.readings;
    }
  }
  return out;
}

/// Marks a batch acknowledged: counts, latency and (optionally) the acked
/// log. Readings rejected UNAVAILABLE are neither: they are resent.
void account(const pending_batch& b, const v1::IngestResponse& resp, stats& st, acked_log& log) {
  std::vector<bool> refused(b.readings, false);
  uint64_t dup = 0, rej = 0, resent = 0;
  {
    std::lock_guard<std::mutex> g{st.mtx};
    for (auto& r : resp.rejections()) {
      if (r.reason() == v1::REJECTION_REASON_DUPLICATE) {
        ++dup;
        continue;
      }
      if (r.index() < b.readings)
        refused[r.index()] = true;
      if (r.reason() == v1::REJECTION_REASON_UNAVAILABLE) {
        ++resent;
        continue;
      }
      ++rej;
      ++st.rejected_by_reason[v1::RejectionReason_Name(r.reason())];
    }
  }
  st.acked += b.readings - rej - resent;
  st.unavailable += resent;
  st.duplicates += dup;
  st.rejected += rej;
  st.on_ack(std::chrono::duration<double, std::milli>(clock_type::now() - b.first_sent).count());
  if (log.enabled()) {
    std::string lines;
    uint32_t i = 0;
    for (auto& d : b.request.devices())
      for (int k = 0; k < d.sequence_size(); ++k, ++i)
        if (!refused[i])
          lines += fmt::format("{} {} {} {}\n", b.reading_patients[i], static_cast<int>(d.metric(k)),
                               d.time_ms(k), d.value(k));
    log.write(lines);
  }
}

// ---- workload generation -------------------------------------------------------------

struct sim_patient {
  std::string name;
  std::string monitor, chart, cgm;  // device names
  bench::patient_sim sim;
  uint64_t seq_monitor, seq_chart, seq_cgm;
};

/// Generates batches for a slice of the patients, tick by tick.
class batch_source {
public:
  batch_source(const options& o, std::vector<sim_patient*> patients, int64_t start_ms)
      : opt_(o), patients_(std::move(patients)), time_ms_(start_ms) {}

  /// Hands out the next batch: opt.batch readings, or in real time fewer
  /// once the oldest has waited opt.linger_ms (as a device gateway would).
  /// Returns 0 when nothing is ready yet. `with_patients`: also record each
  /// reading's patient (acked log only).
  uint32_t next(pending_batch& b, uint64_t batch_id, bool with_patients) {
    if (patients_.empty())
      return 0;
    auto& cur = partial_;
    while (cur.readings < opt_.batch) {
      if (cursor_ >= patients_.size()) {
        cursor_ = 0;
        time_ms_ += opt_.interval_ms;
        continue;
      }
      // Real time: patient i of n emits at phase i/n of each interval, and
      // its readings carry that moment as their device time.
      auto t = time_ms_;
      if (opt_.realtime) {
        t += static_cast<int64_t>(cursor_) * opt_.interval_ms / static_cast<int64_t>(patients_.size());
        if (wall_ms() < t)
          break;  // not due yet
      }
      if (cur.readings == 0)
        first_ms_ = wall_ms();
      auto& p = *patients_[cursor_++];
      scratch_.clear();
      p.sim.step(t, static_cast<double>(opt_.interval_ms) / 1000.0, scratch_);
      // One DeviceReadings per device of this patient and tick.
      v1::DeviceReadings* by_kind[3] = {nullptr, nullptr, nullptr};
      for (auto& r : scratch_) {
        int kind = r.from_chart ? 1 : r.metric == models::metric::glucose ? 2 : 0;
        auto& device = kind == 1 ? p.chart : kind == 2 ? p.cgm : p.monitor;
        auto& seq = kind == 1 ? p.seq_chart : kind == 2 ? p.seq_cgm : p.seq_monitor;
        auto*& d = by_kind[kind];
        if (!d) {
          d = cur.request.add_devices();
          d->set_device(device);
        }
        d->add_sequence(++seq);
        d->add_time_ms(t);
        d->add_metric(static_cast<v1::Metric>(r.metric));
        d->add_value(r.value);
        ++cur.readings;
        if (with_patients)
          cur.reading_patients.push_back(p.name);
      }
    }
    bool ready = cur.readings >= opt_.batch ||
                 (cur.readings > 0 && (!opt_.realtime || wall_ms() - first_ms_ >= opt_.linger_ms));
    if (!ready)
      return 0;
    b = std::move(cur);
    cur = pending_batch{};
    b.request.set_batch_id(batch_id);
    return b.readings;
  }

  int64_t sim_time_ms() const { return time_ms_; }
  bool empty() const { return patients_.empty(); }

private:
  const options& opt_;
  std::vector<sim_patient*> patients_;
  int64_t time_ms_;
  size_t cursor_ = 0;
  std::vector<bench::sim_reading> scratch_;
  pending_batch partial_;
  int64_t first_ms_ = 0;
};

bool retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED ||
         c == grpc::StatusCode::RESOURCE_EXHAUSTED || c == grpc::StatusCode::CANCELLED ||
         c == grpc::StatusCode::ABORTED || c == grpc::StatusCode::INTERNAL ||
         c == grpc::StatusCode::UNKNOWN;
}

// How long the node asked us to wait (google.rpc.RetryInfo), or `fallback`.
std::chrono::milliseconds retry_delay(const grpc::Status& st, std::chrono::milliseconds fallback) {
  google::rpc::Status details;
  if (!details.ParseFromString(st.error_details()))
    return fallback;
  for (auto& any : details.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info))
      return std::chrono::milliseconds(info.retry_delay().seconds() * 1000 +
                                       info.retry_delay().nanos() / 1'000'000);
  }
  return fallback;
}

// ---- workers ----------------------------------------------------------------------------

class worker {
public:
  worker(const options& o, std::shared_ptr<grpc::Channel> ch, batch_source src, stats& st,
         acked_log& log, uint32_t id, clock_type::time_point end)
      : opt_(o), channel_(std::move(ch)), source_(std::move(src)), stats_(st), log_(log),
        id_(id), end_(end) {}

  void run() {
    if (opt_.mode == "unary")
      run_unary();
    else
      run_stream();
  }

private:
  bool time_up() const {
    return interrupted || (opt_.duration_s > 0 && clock_type::now() >= end_);
  }

  // Paces to the configured rate (per worker share).
  void pace(uint32_t readings) {
    if (opt_.rate <= 0)
      return;
    auto per_worker = opt_.rate / opt_.concurrency;
    next_send_ += std::chrono::duration_cast<clock_type::duration>(
        std::chrono::duration<double>(readings / per_worker));
    auto now = clock_type::now();
    if (next_send_ > now)
      std::this_thread::sleep_until(opt_.duration_s > 0 ? std::min(next_send_, end_) : next_send_);
    else if (now - next_send_ > 1s)
      next_send_ = now;  // fell behind: do not burst to catch up
  }

  bool next_batch(pending_batch& b) {
    while (!time_up() && !source_.empty()) {
      if (source_.next(b, (uint64_t{id_} << 40) | (batch_no_ + 1), log_.enabled()) > 0) {
        ++batch_no_;
        return true;
      }
      std::this_thread::sleep_for(1ms);  // realtime: next patient not due
    }
    return false;
  }

  void run_unary() {
    auto stub = v1::IngestService::NewStub(channel_);
    next_send_ = clock_type::now();
    pending_batch b;
    while (next_batch(b)) {
      pace(b.readings);
      b.first_sent = clock_type::now();
      stats_.sent += b.readings;
      for (;;) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 10s);
        v1::IngestResponse resp;
        auto st = stub->Ingest(&ctx, b.request, &resp);
        if (st.ok()) {
          auto rest = unavailable_part(b, resp);
          account(b, resp, stats_, log_);
          if (rest.readings == 0)
            break;
          ++stats_.retries;  // resend what its owner did not take
          std::this_thread::sleep_for(200ms);
          rest.request.set_batch_id(b.request.batch_id());
          b = std::move(rest);
          continue;
        }
        if (!retryable(st.error_code()) || interrupted) {
          std::cerr << "ingest failed: " << st.error_message() << "\n";
          return;
        }
        if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
          ++stats_.exhausted;
        ++stats_.retries;
        std::this_thread::sleep_for(retry_delay(st, 200ms));
      }
    }
  }

  // One stream at a time; on failure, reconnect and resend every unacked
  // batch in order (same sequence numbers: the node drops duplicates).
  void run_stream() {
    auto stub = v1::IngestService::NewStub(channel_);
    next_send_ = clock_type::now();
    std::deque<pending_batch> inflight;
    std::deque<pending_batch> resend;  // readings rejected UNAVAILABLE, resent after 200 ms
    bool producing = true;
    while (producing || !inflight.empty() || (!resend.empty() && !interrupted)) {
      grpc::ClientContext ctx;
      auto stream = stub->StreamIngest(&ctx);
      std::mutex mtx;
      std::condition_variable cv;
      size_t unacked_sent = 0;  // of inflight, how many were written on this stream
      bool broken = false;
      // Resend what is still unacknowledged.
      for (auto& b : inflight) {
        if (!stream->Write(b.request)) {
          broken = true;
          break;
        }
        ++unacked_sent;
      }
      std::thread reader([&] {
        v1::IngestResponse resp;
        while (stream->Read(&resp)) {
          std::lock_guard<std::mutex> g{mtx};
          if (inflight.empty() || inflight.front().request.batch_id() != resp.batch_id())
            continue;  // not ours (cannot happen: acks are in order)
          auto rest = unavailable_part(inflight.front(), resp);
          account(inflight.front(), resp, stats_, log_);
          inflight.pop_front();
          if (rest.readings > 0) {
            rest.first_sent = clock_type::now() + 200ms;  // not before
            resend.push_back(std::move(rest));
          }
          --unacked_sent;
          cv.notify_all();
        }
        std::lock_guard<std::mutex> g{mtx};
        broken = true;
        cv.notify_all();
      });
      while (!broken) {
        {
          std::unique_lock<std::mutex> lock{mtx};
          cv.wait_for(lock, 100ms, [&] { return broken || inflight.size() < opt_.window; });
          if (broken)
            break;
          if (inflight.size() >= opt_.window)
            continue;
        }
        pending_batch b;
        {
          std::lock_guard<std::mutex> g{mtx};
          if (!resend.empty() && resend.front().first_sent <= clock_type::now()) {
            b = std::move(resend.front());
            resend.pop_front();
          }
        }
        if (b.readings > 0) {
          ++stats_.retries;
          b.request.set_batch_id((uint64_t{id_} << 40) | ++batch_no_);
        } else if (producing && next_batch(b)) {
          pace(b.readings);
          b.first_sent = clock_type::now();
          stats_.sent += b.readings;
        } else {
          producing = false;
          std::lock_guard<std::mutex> g{mtx};
          if (interrupted || (resend.empty() && inflight.empty()))
            break;
          continue;  // acks may bring readings to resend
        }
        {
          std::lock_guard<std::mutex> g{mtx};
          inflight.push_back(std::move(b));
          ++unacked_sent;
        }
        if (!stream->Write(inflight.back().request)) {
          std::lock_guard<std::mutex> g{mtx};
          broken = true;
        }
      }
      if (!producing && !broken) {
        // Wait for the last acks (bounded), then close our side.
        std::unique_lock<std::mutex> lock{mtx};
        cv.wait_for(lock, 15s, [&] { return broken || inflight.empty(); });
      }
      stream->WritesDone();
      if (!broken)
        ctx.TryCancel();
      reader.join();
      auto st = stream->Finish();
      if (inflight.empty())
        continue;
      if (interrupted && !producing) {
        std::cerr << fmt::format("worker {}: {} batches unacknowledged at exit\n", id_, inflight.size());
        return;
      }
      ++stats_.retries;
      if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
        ++stats_.exhausted;
      if (!st.ok() && !retryable(st.error_code())) {
        std::cerr << "ingest stream failed: " << st.error_message() << "\n";
        return;
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  const options& opt_;
  std::shared_ptr<grpc::Channel> channel_;
  batch_source source_;
  stats& stats_;
  acked_log& log_;
  uint32_t id_;
  clock_type::time_point end_;
  clock_type::time_point next_send_;
  uint64_t batch_no_ = 0;
};

// ---- registration -----------------------------------------------------------------------

bool ok_or_exists(const grpc::Status& st) {
  return st.ok() || st.error_code() == grpc::StatusCode::ALREADY_EXISTS;
}


// Calls `rpc(context)` until it succeeds or finds the resource exists,
// retrying what the node says is temporary (rate limits, overload, recovery)
// after the delay it asks for, for up to a minute.
template <class Rpc>
bool call_until_done(Rpc rpc, const char* what) {
  auto give_up = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    auto st = rpc(ctx);
    if (ok_or_exists(st))
      return true;
    if (!retryable(st.error_code()) || std::chrono::steady_clock::now() > give_up || interrupted) {
      std::cerr << what << ": " << st.error_message() << "\n";
      return false;
    }
    std::this_thread::sleep_for(retry_delay(st, 200ms));
  }
}

bool register_patients(const options& o, const std::shared_ptr<grpc::Channel>& ch,
                       const std::vector<sim_patient>& patients) {
  std::atomic<bool> ok{true};
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  // Many callers in parallel: the node commits concurrent registry calls
  // together (one fsync per group).
  for (uint32_t t = 0; t < 64; ++t)
    threads.emplace_back([&] {
      auto stub = v1::RegistryService::NewStub(ch);
      auto call = [&](auto method, auto& req, auto& resp, const char* what) {
        return call_until_done([&](grpc::ClientContext& ctx) { return ((*stub).*method)(&ctx, req, &resp); },
                               what);
      };
      for (size_t i; (i = next++) < patients.size() && ok;) {
        auto& p = patients[i];
        v1::CreatePatientRequest cp;
        cp.set_parent("tenants/" + o.tenant);
        cp.set_patient_id(p.name.substr(p.name.rfind('/') + 1));
        cp.mutable_patient()->set_ward(fmt::format("ward-{}", i % 10));
        cp.mutable_patient()->set_bed(std::to_string(i / 10 + 1));
        v1::Patient pr;
        bool good = call(&v1::RegistryService::Stub::CreatePatient, cp, pr, "create patient");
        auto device = [&](const std::string& name, v1::DeviceType type) {
          auto id = name.substr(name.rfind('/') + 1);
          v1::CreateDeviceRequest cd;
          cd.set_parent("tenants/" + o.tenant);
          cd.set_device_id(id);
          cd.mutable_device()->set_type(type);
          v1::Device dr;
          bool g = call(&v1::RegistryService::Stub::CreateDevice, cd, dr, "create device");
          v1::AssignDeviceRequest ad;
          ad.set_device(name);
          ad.set_patient(p.name);
          v1::Device ar;
          return g && call(&v1::RegistryService::Stub::AssignDevice, ad, ar, "assign device");
        };
        good = good && device(p.monitor, v1::DEVICE_TYPE_BEDSIDE_MONITOR);
        good = good && device(p.chart, v1::DEVICE_TYPE_OBSERVATION_CHART);
        if (!p.cgm.empty())
          good = good && device(p.cgm, v1::DEVICE_TYPE_GLUCOSE_MONITOR);
        if (!good)
          ok = false;
      }
    });
  for (auto& t : threads)
    t.join();
  return ok;
}

// ---- demo display --------------------------------------------------------------------------

void watch_alerts(const options& o, const std::shared_ptr<grpc::Channel>& ch, stats& st) {
  auto stub = v1::AlertService::NewStub(ch);
  std::optional<uint64_t> token;  // none: start live
  while (!interrupted) {
    grpc::ClientContext ctx;
    v1::StreamAlertsRequest req;
    req.set_parent("tenants/" + o.tenant);
    if (token)
      req.set_resume_after(*token);
    auto reader = stub->StreamAlerts(&ctx, req);
    std::atomic<bool> stream_done{false};
    std::thread canceller([&] {
      while (!interrupted && !stream_done)
        std::this_thread::sleep_for(100ms);
      ctx.TryCancel();
    });
    v1::AlertEvent e;
    while (reader->Read(&e)) {
      token = e.resume_token();
      auto& a = e.alert();
      if (e.type() == v1::ALERT_EVENT_TYPE_RAISED && st.measuring) {
        std::lock_guard<std::mutex> g{st.mtx};
        st.alert_latency_ms.push_back(static_cast<double>(wall_ms() - a.raise_time_ms()));
      }
      if (!o.watch)
        continue;
      auto type = v1::AlertEventType_Name(e.type()).substr(sizeof("ALERT_EVENT_TYPE_") - 1);
      auto prio = v1::Priority_Name(a.priority()).substr(sizeof("PRIORITY_") - 1);
      auto patient = a.patient().substr(a.patient().rfind('/') + 1);
      std::cout << fmt::format("ALERT {:<12} {:<6} {} {:<7} {}\n", type, prio, patient, a.ward(),
                               a.message())
                << std::flush;
    }
    stream_done = true;
    canceller.join();
    reader->Finish();
    if (!interrupted)
      std::this_thread::sleep_for(500ms);
  }
}

void print_summary(const std::shared_ptr<grpc::Channel>& ch, uint64_t& last_accepted,
                   clock_type::time_point& last_time) {
  auto stub = v1::ClusterService::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 2s);
  v1::NodeStatus s;
  if (!stub->GetNodeStatus(&ctx, {}, &s).ok())
    return;
  auto now = clock_type::now();
  auto secs = std::chrono::duration<double>(now - last_time).count();
  double rate = secs > 0 ? static_cast<double>(s.readings_accepted() - last_accepted) / secs : 0;
  last_accepted = s.readings_accepted();
  last_time = now;
  std::cout << fmt::format(
                   "SUMMARY twins: {} patients, {} devices | {:.0f} readings/s ({} total) | "
                   "active alerts: {} high, {} medium, {} low\n",
                   s.patient_twins(), s.device_twins(), rate, s.readings_accepted(),
                   s.alerts_active_high(), s.alerts_active_medium(), s.alerts_active_low())
            << std::flush;
}

/// Memory benchmark mode: registers `n` asset tags (unassigned) and sends one
/// battery reading from each, so the node holds n live, idle device twins.
int run_device_twins(const options& o, const std::shared_ptr<grpc::Channel>& ch) {
  auto name = [&](uint32_t i) { return models::device_name(o.tenant, fmt::format("tag-{:07}", i)); };
  std::atomic<uint32_t> next{0};
  std::atomic<bool> ok{true};
  auto t0 = clock_type::now();
  bool do_register = o.device_phase != "activate", do_activate = o.device_phase != "register";
  auto parallel = [&](auto body) {
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < 64; ++t)
      threads.emplace_back(body);
    for (auto& t : threads)
      t.join();
  };
  if (do_register)
  parallel([&] {
    auto stub = v1::RegistryService::NewStub(ch);
    for (uint32_t i; (i = next++) < o.device_twins && ok;) {
      v1::CreateDeviceRequest req;
      req.set_parent("tenants/" + o.tenant);
      req.set_device_id(fmt::format("tag-{:07}", i));
      req.mutable_device()->set_type(v1::DEVICE_TYPE_ASSET_TAG);
      v1::Device out;
      if (!call_until_done([&](grpc::ClientContext& ctx) { return stub->CreateDevice(&ctx, req, &out); },
                           "create device"))
        ok = false;
    }
  });
  if (!ok)
    return 1;
  auto t1 = clock_type::now();
  if (do_register)
    std::cout << fmt::format("registered {} devices in {:.1f} s\n", o.device_twins,
                             std::chrono::duration<double>(t1 - t0).count());
  if (!do_activate)
    return 0;
  next = 0;
  auto now = wall_ms();
  parallel([&] {
    auto stub = v1::IngestService::NewStub(ch);
    for (uint32_t first; (first = next.fetch_add(1000)) < o.device_twins && ok;) {
      v1::IngestRequest req;
      for (auto i = first; i < std::min(o.device_twins, first + 1000); ++i) {
        auto* d = req.add_devices();
        d->set_device(name(i));
        d->add_sequence(static_cast<uint64_t>(now));
        d->add_time_ms(now);
        d->add_metric(v1::METRIC_BATTERY);
        d->add_value(80);
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 60s);
      v1::IngestResponse resp;
      auto st = stub->Ingest(&ctx, req, &resp);
      if (!st.ok() || resp.rejections_size() > 0) {
        std::cerr << "ingest failed: " << st.error_message() << "\n";
        ok = false;
      }
    }
  });
  std::cout << fmt::format("activated {} device twins in {:.1f} s\n", o.device_twins,
                           std::chrono::duration<double>(clock_type::now() - t1).count());
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"twinsim: HealthTwin patient simulator and load generator", "twinsim"};
  app.add_option("--target", o.target, "node gRPC address")->capture_default_str();
  app.add_option("--token-file", o.token_file, "file with the bearer token to send (JWT)")->required()->check(CLI::ExistingFile);
  app.add_flag("--plaintext", o.plaintext, "no TLS (a node run with --insecure-plaintext)");
  app.add_option("--tls-ca-file", o.tls_ca_file, "PEM CA of the node's certificate (default: system roots)");
  app.add_option("--tls-cert-file", o.tls_cert_file, "client certificate, for nodes that require mTLS");
  app.add_option("--tls-key-file", o.tls_key_file, "private key of --tls-cert-file");
  app.add_option("--tls-server-name", o.tls_server_name, "name the node's certificate must carry (default: the target host)");
  app.add_option("--tenant", o.tenant, "tenant id")->capture_default_str();
  app.add_option("--patients", o.patients, "simulated patients")->check(CLI::Range(1u, 10'000'000u))->capture_default_str();
  app.add_option("--rate", o.rate, "readings/s over all workers; 0 = flat out")->capture_default_str();
  app.add_flag("--realtime", o.realtime, "one tick per --interval-ms of wall time, timestamps = now (demo)");
  app.add_option("--duration", o.duration_s, "seconds to run; 0 = until Ctrl-C")->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "seconds at the start whose latencies are not counted (twins activate)")->capture_default_str();
  app.add_option("--batch", o.batch, "readings per request")->check(CLI::Range(1u, 10'000u))->capture_default_str();
  app.add_option("--concurrency", o.concurrency, "parallel streams or unary callers")->check(CLI::Range(1u, 1024u))->capture_default_str();
  app.add_option("--mode", o.mode, "stream or unary")->check(CLI::IsMember({"stream", "unary"}))->capture_default_str();
  app.add_option("--window", o.window, "batches in flight per stream")->check(CLI::Range(1u, 1024u))->capture_default_str();
  app.add_option("--linger-ms", o.linger_ms, "real time: send a partial batch once its oldest reading waited this long")->check(CLI::Range(int64_t{0}, int64_t{10'000}))->capture_default_str();
  app.add_option("--interval-ms", o.interval_ms, "simulated time between a patient's readings")->check(CLI::Range(int64_t{10}, int64_t{3'600'000}))->capture_default_str();
  app.add_option("--start-offset-s", o.start_offset_s, "simulated clock starts this far in the past (-1: 0 with --realtime, else 86400)");
  app.add_option("--glucose-share", o.glucose_share, "share of patients with a glucose monitor")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--episodes-per-hour", o.episodes_per_hour, "chance per patient-hour of a deterioration episode")->capture_default_str();
  app.add_option("--in-episode-share", o.in_episode_share, "share of patients that start in the middle of a deterioration episode")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_flag("!--no-register", o.do_register, "skip creating patients and devices");
  app.add_flag("--watch", o.watch, "print alerts as they are raised and a node summary every 2 s");
  app.add_flag("--alert-latency", o.alert_latency, "measure reading-to-alert latency (needs --realtime device clocks)");
  app.add_flag("--quiet", o.quiet, "no progress lines");
  app.add_option("--acked-log", o.acked_log, "append 'patient metric time_ms value' per acknowledged reading");
  app.add_option("--report-json", o.report_json, "write the final report as JSON here");
  app.add_option("--node-pid", o.node_pid,
                 "the node's process id (on this machine): report its CPU per million readings "
                 "acknowledged after the warm-up");
  app.add_option("--owned-by", o.owned_by, "cluster benchmark: only patients whose twins and devices live on this member");
  app.add_option("--cluster-members", o.cluster_members, "with --owned-by: the member names, as the nodes are given them")->delimiter(',');
  app.add_option("--shards", o.shards, "with --owned-by: the nodes' --shards")->capture_default_str();
  app.add_option("--device-twins", o.device_twins, "memory benchmark: register N asset tags, send one reading each, exit");
  app.add_option("--device-twins-phase", o.device_phase, "register, activate or both")->check(CLI::IsMember({"register", "activate", "both"}))->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.concurrency = std::min(o.concurrency, o.patients);  // a worker needs patients

  signal(SIGINT, [](int) { interrupted = true; });
  signal(SIGTERM, [](int) { interrupted = true; });
  signal(SIGPIPE, SIG_IGN);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  // Several channels spread the load over more than one HTTP/2 connection.
  for (uint32_t i = 0; i < std::min(o.concurrency, 4u); ++i) {
    args.SetInt("healthtwin.channel", static_cast<int>(i));  // distinct channel per worker group
    healthtwin::services::channel_settings cs;
    cs.target = o.target;
    cs.token = healthtwin::services::read_token_file(o.token_file);
    cs.plaintext = o.plaintext;
    cs.ca_file = o.tls_ca_file;
    cs.cert_file = o.tls_cert_file;
    cs.key_file = o.tls_key_file;
    cs.server_name = o.tls_server_name;
    std::string error;
    auto ch = healthtwin::services::make_channel(cs, error, args);
    if (!ch || cs.token.empty()) {
      std::cerr << (ch ? "--token-file: empty" : error) << "\n";
      return 2;
    }
    channels.push_back(std::move(ch));
  }
  auto& control = channels.front();
  if (!control->WaitForConnected(std::chrono::system_clock::now() + 15s)) {
    std::cerr << "cannot connect to " << o.target << "\n";
    return 1;
  }

  if (o.device_twins > 0)
    return run_device_twins(o, control);

  // Sequence numbers continue across runs: start above anything a previous
  // run could have used (wall clock in microseconds).
  auto seq_base = static_cast<uint64_t>(wall_ms()) * 1000;
  std::vector<sim_patient> patients;
  patients.reserve(o.patients);
  std::mt19937_64 pick{o.seed};
  std::optional<cluster::shard_map> placement;
  uint32_t target_member = 0;
  if (!o.owned_by.empty()) {
    std::vector<cluster::member> members;
    for (auto& m : o.cluster_members)
      members.push_back({m, ""});
    placement.emplace(members, o.shards);
    auto found = placement->find(o.owned_by);
    if (!found) {
      std::cerr << "--owned-by: " << o.owned_by << " is not among --cluster-members\n";
      return 2;
    }
    target_member = *found;
  }
  auto owned = [&](const std::string& name) {
    return !placement || placement->owner(models::shard_of(name, o.shards)) == target_member;
  };
  for (uint32_t i = 0; patients.size() < o.patients; ++i) {
    bench::patient_sim::settings s;
    s.episodes_per_hour = o.episodes_per_hour;
    std::uniform_real_distribution<double> u{0, 1};
    s.has_glucose_monitor = u(pick) < o.glucose_share;
    if (u(pick) < o.in_episode_share)
      s.start_in_episode = 0.3 + 0.4 * u(pick);  // ramping up or near the peak
    auto idx = fmt::format("{:05}", i);
    if (!owned(models::patient_name(o.tenant, patient_id(i))) ||
        !owned(models::device_name(o.tenant, "mon-" + idx)) ||
        !owned(models::device_name(o.tenant, "chart-" + idx)) ||
        (s.has_glucose_monitor && !owned(models::device_name(o.tenant, "cgm-" + idx))))
      continue;
    patients.push_back(sim_patient{models::patient_name(o.tenant, patient_id(i)),
                                   models::device_name(o.tenant, "mon-" + idx),
                                   models::device_name(o.tenant, "chart-" + idx),
                                   s.has_glucose_monitor ? models::device_name(o.tenant, "cgm-" + idx) : "",
                                   bench::patient_sim{o.seed * 1'000'003 + i, s}, seq_base, seq_base,
                                   seq_base});
  }

  if (o.do_register) {
    auto t0 = clock_type::now();
    if (!register_patients(o, control, patients))
      return 1;
    if (!o.quiet)
      std::cout << fmt::format("registered {} patients in {:.1f} s\n", o.patients,
                               std::chrono::duration<double>(clock_type::now() - t0).count());
  }

  auto offset = o.start_offset_s >= 0 ? o.start_offset_s : (o.realtime ? 0 : 86'400);
  auto start_ms = wall_ms() - offset * 1000;
  stats st;
  acked_log log{o.acked_log};
  auto begin = clock_type::now();
  auto end = begin + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.duration_s));
  auto warm = begin + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.warmup_s));
  st.measuring = o.warmup_s <= 0;

  std::vector<std::thread> threads;
  for (uint32_t w = 0; w < o.concurrency; ++w) {
    std::vector<sim_patient*> slice;
    for (size_t i = w; i < patients.size(); i += o.concurrency)
      slice.push_back(&patients[i]);
    threads.emplace_back([&, w, slice = std::move(slice)]() mutable {
      worker{o, channels[w % channels.size()], batch_source{o, std::move(slice), start_ms}, st, log, w, end}.run();
    });
  }
  std::thread watcher;
  if (o.watch || o.alert_latency)
    watcher = std::thread([&] { watch_alerts(o, control, st); });

  // Progress until the workers finish.
  std::atomic<bool> done{false};
  // The node's CPU and the readings acknowledged from the end of the warm-up.
  std::atomic<double> cpu_at_warm{o.node_pid ? healthtwin::bench::process_cpu_s(o.node_pid) : 0};
  std::atomic<uint64_t> acked_at_warm{0};
  std::thread progress([&] {
    uint64_t last_acked = 0, node_accepted = 0;
    auto last = clock_type::now(), node_last = last;
    int tick = 0;
    while (!done) {
      std::this_thread::sleep_for(100ms);
      if (!st.measuring && clock_type::now() >= warm) {
        if (o.node_pid)
          cpu_at_warm = healthtwin::bench::process_cpu_s(o.node_pid);
        acked_at_warm = st.acked.load();
        st.measuring = true;
      }
      if (++tick % 10 != 0)
        continue;
      auto now = clock_type::now();
      auto acked = st.acked.load();
      auto rate = static_cast<double>(acked - last_acked) / std::chrono::duration<double>(now - last).count();
      last_acked = acked;
      last = now;
      if (o.watch && tick % 20 == 0)
        print_summary(control, node_accepted, node_last);
      if (o.quiet || o.watch)
        continue;
      std::vector<double> lat;
      {
        std::lock_guard<std::mutex> g{st.mtx};
        auto n = std::min<size_t>(st.latency_ms.size(), 2000);
        lat.assign(st.latency_ms.end() - static_cast<long>(n), st.latency_ms.end());
      }
      std::cout << fmt::format("[{:6.1f}s] sent {} acked {} rejected {} | {:.0f} readings/s | ack p50 {:.1f} ms p99 {:.1f} ms\n",
                               std::chrono::duration<double>(now - begin).count(), st.sent.load(), acked,
                               st.rejected.load(), rate, percentile(lat, 50), percentile(lat, 99))
                << std::flush;
    }
  });
  for (auto& t : threads)
    t.join();
  double node_cpu_per_m = 0;
  if (o.node_pid) {
    auto readings = st.acked.load() - acked_at_warm.load();
    auto cpu = healthtwin::bench::process_cpu_s(o.node_pid) - cpu_at_warm.load();
    node_cpu_per_m = readings ? cpu / static_cast<double>(readings) * 1e6 : 0;
    std::cout << fmt::format("node CPU: {:.2f} s for {} readings acknowledged after the warm-up = {:.3f} CPU-s per "
                             "million readings\n",
                             cpu, readings, node_cpu_per_m);
  }
  auto elapsed = std::chrono::duration<double>(clock_type::now() - begin).count();
  interrupted = true;
  done = true;
  progress.join();
  if (watcher.joinable())
    watcher.join();

  std::vector<double> lat;
  {
    std::lock_guard<std::mutex> g{st.mtx};
    lat = st.latency_ms;
  }
  auto acked = st.acked.load();
  auto throughput = elapsed > 0 ? static_cast<double>(acked) / elapsed : 0;
  std::cout << fmt::format(
      "\n== twinsim report ==\nmode {} | patients {} | batch {} | concurrency {} | window {} | rate {} | warm-up {} s\n"
      "elapsed {:.2f} s\nreadings sent {}\nreadings acked {}\nreadings rejected {}\nduplicates (already acked) {}\nunavailable (resent) {}\n"
      "retries {} (overloaded or rate-limited {})\nthroughput {:.0f} readings/s acknowledged\n"
      "ack latency per batch: p50 {:.2f} ms  p99 {:.2f} ms  p99.9 {:.2f} ms  max {:.2f} ms ({} batches)\n",
      o.mode, o.patients, o.batch, o.concurrency, o.window,
      o.realtime ? fmt::format("real time every {} ms", o.interval_ms) : o.rate == 0 ? std::string{"flat out"} : fmt::format("{:.0f}/s", o.rate),
      o.warmup_s,
      elapsed, st.sent.load(), acked, st.rejected.load(), st.duplicates.load(), st.unavailable.load(),
      st.retries.load(), st.exhausted.load(), throughput, percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9), percentile(lat, 100), lat.size());
  for (auto& [reason, n] : st.rejected_by_reason)
    std::cout << fmt::format("  rejected {}: {}\n", reason, n);
  std::vector<double> alert_lat;
  {
    std::lock_guard<std::mutex> g{st.mtx};
    alert_lat = st.alert_latency_ms;
  }
  if (o.alert_latency)
    std::cout << fmt::format("reading-to-alert latency: p50 {:.1f} ms  p99 {:.1f} ms  max {:.1f} ms ({} alerts)\n",
                             percentile(alert_lat, 50), percentile(alert_lat, 99), percentile(alert_lat, 100),
                             alert_lat.size());
  if (!o.report_json.empty()) {
    std::ofstream out{o.report_json};
    out << fmt::format(
        "{{\"mode\":\"{}\",\"patients\":{},\"batch\":{},\"concurrency\":{},\"elapsed_s\":{:.3f},"
        "\"sent\":{},\"acked\":{},\"rejected\":{},\"duplicates\":{},\"retries\":{},\"exhausted\":{},"
        "\"unavailable\":{},\"readings_per_s\":{:.1f},\"p50_ms\":{:.3f},\"p99_ms\":{:.3f},\"p999_ms\":{:.3f},"
        "\"alerts\":{},\"alert_p50_ms\":{:.3f},\"alert_p99_ms\":{:.3f},\"node_cpu_s_per_m\":{:.4f}}}\n",
        o.mode, o.patients, o.batch, o.concurrency, elapsed, st.sent.load(), acked, st.rejected.load(),
        st.duplicates.load(), st.retries.load(), st.exhausted.load(), st.unavailable.load(), throughput, percentile(lat, 50),
        percentile(lat, 99), percentile(lat, 99.9), alert_lat.size(), percentile(alert_lat, 50), percentile(alert_lat, 99),
        node_cpu_per_m);
  }
  return st.rejected.load() == 0 ? 0 : 5;
}
