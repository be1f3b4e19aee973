#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include "actors/index/twin_changes.hpp"
#include "actors/index/twin_index.hpp"
#include "actors/models/alert_policy.hpp"
#include "actors/models/metric.hpp"

namespace prometheus {
class Registry;
}

namespace healthtwin::storage {
class store;
}

namespace healthtwin::actors {

/// Lifecycle state of an alert. Numbers equal healthtwin.v1.AlertState.
enum class alert_state : uint8_t { active = 1, acknowledged = 2, resolved = 3 };

/// What happened to an alert. Numbers equal healthtwin.v1.AlertEventType.
enum class alert_event_type : uint8_t {
  raised = 1,
  updated = 2,
  acknowledged = 3,
  resolved = 4,
  escalated = 5,  ///< re-notified: unacknowledged for longer than the escalation time
  silenced = 6,   ///< a clinician silenced the patient's metric
};

/// An alert as the hub keeps and persists it.
struct alert_record {
  std::string name;     ///< {patient or device}/alerts/{id}
  std::string patient;  ///< tenants/{t}/patients/{p}; empty for a device's own alerts
  std::string ward;
  models::alert_kind kind = models::alert_kind::threshold;
  models::metric subject{};  ///< the metric, where the kind has one
  std::string device;        ///< device alerts, and the source of clinical ones
  models::priority level = models::priority::none;
  alert_state state = alert_state::active;
  double value = 0;
  std::string message;
  int64_t raise_time_ms = 0;
  std::string acknowledged_by;
  std::string acknowledge_note;
  int64_t acknowledge_time_ms = 0;
  int64_t resolve_time_ms = 0;
  int64_t predicted_time_ms = 0;  ///< trend forecasts: predicted crossing (device time)
  uint32_t escalation_level = 0;  ///< times re-notified unacknowledged
  int64_t notify_time_ms = 0;     ///< node time of the last (re-)notification
  int64_t silenced_until_ms = 0;  ///< node time; 0: not silenced
  std::string resolved_by;        ///< empty: resolved automatically
  std::string resolve_note;
  /// Node time the reading that raised it was committed (0: a timer or a
  /// clinician's input raised it): the reading-to-alert latency metric's
  /// start. Not stored.
  int64_t committed_ms = 0;
};

struct alert_event {
  uint64_t sequence = 0;  ///< resume token: strictly increasing per node
  alert_event_type type = alert_event_type::raised;
  alert_record alert;
  int64_t event_time_ms = 0;  ///< node wall clock
};

/// Which alerts a subscriber or a listing wants.
struct alert_filter {
  std::string tenant;  ///< required
  std::string ward;    ///< empty = all wards
  models::priority min_priority = models::priority::none;
  std::string patient;  ///< empty = all patients (and devices)
  uint8_t states = 0;   ///< bit (1 << alert_state) per state wanted; 0 = any
  bool matches(const alert_record& a) const;
};

/// A subscriber's bounded queue of events, filled by the hub and drained by
/// the subscriber's own thread (a gRPC stream). When the subscriber falls
/// `capacity` events behind, the sink is closed as overflowed: the client
/// reconnects with its last resume token and loses nothing.
/// Thread-safe.
class alert_sink {
public:
  explicit alert_sink(alert_filter f, size_t capacity = 10'000)
      : filter(std::move(f)), capacity_(capacity) {}

  const alert_filter filter;

  /// Called by the hub; never blocks.
  void push(const alert_event& e);
  /// Waits up to `timeout` for the next event; nullopt on timeout or close.
  std::optional<alert_event> pop(std::chrono::milliseconds timeout);
  void close();
  bool overflowed() const;
  bool closed() const;

private:
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<alert_event> queue_;
  size_t capacity_;
  bool overflowed_ = false;
  bool closed_ = false;
};

using alert_sink_ptr = std::shared_ptr<alert_sink>;

/// Active alerts per priority, for status and metrics.
struct alert_counts {
  uint64_t high = 0;
  uint64_t medium = 0;
  uint64_t low = 0;
};

/// Longest silence a clinician may set: 4 h.
inline constexpr int64_t max_silence_ms = 4 * 3'600'000;

/// A clinician's silence of one patient's alerts on one metric (or all).
struct alert_silence {
  std::string patient;
  models::metric subject{};  ///< metric{} (0): every alert of the patient
  int64_t until_ms = 0;      ///< node time
  std::string silenced_by;
  std::string reason;

  bool covers(const alert_record& a, int64_t now_ms) const {
    return a.patient == patient && now_ms < until_ms &&
           (subject == models::metric{} || a.subject == subject);
  }
};

/// Settings of the alert hub. None can change at run time.
struct alert_hub_settings {
  /// Resolved alerts kept in memory for ListAlerts. Default 1,000.
  size_t recent_resolved = 1000;
  /// Unacknowledged alerts of at least `escalate_priority` are re-notified
  /// with a higher escalation level after this long. Default 2 min.
  int64_t escalate_after_ms = 120'000;
  models::priority escalate_priority = models::priority::high;
  /// How often the hub looks for alerts to escalate. Default 1 s.
  int64_t escalation_check_ms = 1000;
  /// Node clock (ms since the epoch); tests inject their own.
  std::function<int64_t()> clock;
  /// Where each patient's open alerts are summarised for twin queries
  /// (none: not summarised).
  twin_index* index = nullptr;
  /// In a cluster: whether this node owns a shard. The hub keeps only the
  /// alerts of owners (patients, devices) in its shards; empty: all.
  std::function<bool(uint32_t shard)> owns;
  /// Told of the owners of every alert published (twin watches).
  const twin_changes* changes = nullptr;
};

// ---- messages the hub handles ----------------------------------------------
using alert_raise_atom = caf::atom_constant<caf::atom("al_raise")>;
using alert_update_atom = caf::atom_constant<caf::atom("al_update")>;
using alert_resolve_atom = caf::atom_constant<caf::atom("al_resolve")>;
using alert_ack_atom = caf::atom_constant<caf::atom("al_ack")>;
using alert_list_atom = caf::atom_constant<caf::atom("al_list")>;
using alert_sub_atom = caf::atom_constant<caf::atom("al_sub")>;
using alert_unsub_atom = caf::atom_constant<caf::atom("al_unsub")>;
using alert_count_atom = caf::atom_constant<caf::atom("al_count")>;
using alert_flush_atom = caf::atom_constant<caf::atom("al_flush")>;  ///< internal: group commit
using alert_resolve_by_atom = caf::atom_constant<caf::atom("al_rsby")>;
using alert_resolve_kind_atom = caf::atom_constant<caf::atom("al_rskind")>;
using alert_silence_atom = caf::atom_constant<caf::atom("al_silence")>;
using alert_escalate_atom = caf::atom_constant<caf::atom("al_escal")>;  ///< escalation check
/// The end of a patient's erasure in the actors: `fn` (answering the
/// caller) runs once, when the last copy goes away — after the alert hub
/// handled the erasure, or when the messages carrying it are dropped at
/// shutdown. Passed sequencer -> shard -> twin -> hub.
struct erase_completion {
  std::function<void()> fn;
  erase_completion() = default;
  erase_completion(const erase_completion&) = delete;
  erase_completion& operator=(const erase_completion&) = delete;
  ~erase_completion() {
    if (fn)
      fn();
  }
};
using erase_completion_ptr = std::shared_ptr<erase_completion>;

/// (al_erase, alert_erasure): the patient (or device) was erased: forget
/// its alerts and silences and delete their records (storage/erasure.hpp).
using alert_erase_atom = caf::atom_constant<caf::atom("al_erase")>;
/// (al_take, std::vector<uint32_t> shards) -> bool: shards taken over from
/// another member (their records are in the store): load their active
/// alerts and silences. (al_drop, std::vector<uint32_t> shards) -> bool:
/// shards handed to another member: forget their alerts and silences (the
/// records leave with the shard). Both answer once done.
using alert_take_shards_atom = caf::atom_constant<caf::atom("al_take")>;
using alert_drop_shards_atom = caf::atom_constant<caf::atom("al_drop")>;
/// (al_adopt, std::string patient) -> bool: a patient moved here from
/// another region (its records were just written): load its active alerts
/// and silences. Answers once done.
using alert_adopt_atom = caf::atom_constant<caf::atom("al_adopt")>;

/// What a twin says changed about one of its open alerts.
struct alert_update {
  std::string name;
  models::priority level{};
  double value = 0;
  std::string message;
  int64_t predicted_ms = 0;  ///< a forecast's crossing time; 0: none
};

/// A twin's alert whose condition cleared, at `time_ms` (data time).
struct alert_resolution {
  std::string name;
  double value = 0;
  int64_t time_ms = 0;
};

/// A device twin's alerts of `kind`, resolved at `time_ms`.
struct alert_kind_resolution {
  std::string owner;
  models::alert_kind kind{};
  int64_t time_ms = 0;
};

/// A clinician's action on one alert: acknowledge or resolve by hand.
struct alert_action {
  std::string name;
  std::string who;
  std::string note;
};

/// A patient (or device) erased: its alerts and silences go; `done` runs
/// as the message goes.
struct alert_erasure {
  std::string owner;
  erase_completion_ptr done;
};

/// The alert hub's protocol: a message it does not handle, or a reply of
/// another type, fails to compile at the sender.
using alert_hub_actor = caf::typed_actor<
    caf::reacts_to<alert_raise_atom, alert_record>,     // from twins; a known name is ignored (replay)
    caf::reacts_to<alert_update_atom, alert_update>,    // from twins
    caf::reacts_to<alert_resolve_atom, alert_resolution>,  // from twins
    caf::reacts_to<alert_resolve_kind_atom, alert_kind_resolution>,  // from device twins
    caf::replies_to<alert_ack_atom, alert_action>::with<alert_record>,  // NOT_FOUND-like error if unknown
    /// resolved by hand (patient twins forward it after resetting the condition)
    caf::replies_to<alert_resolve_by_atom, alert_action>::with<alert_record>,
    /// the open alerts the silence covers
    caf::replies_to<alert_silence_atom, alert_silence>::with<std::vector<alert_record>>,
    caf::reacts_to<alert_escalate_atom>,  // escalates due alerts (also on a timer)
    caf::reacts_to<alert_flush_atom>,     // internal: group commit
    caf::replies_to<alert_list_atom, alert_filter, bool>::with<std::vector<alert_record>>,
    /// the active alerts of a patient
    caf::replies_to<alert_list_atom, std::string>::with<std::vector<alert_record>>,
    /// the last event sequence at subscription
    caf::replies_to<alert_sub_atom, alert_sink_ptr>::with<uint64_t>,
    caf::reacts_to<alert_unsub_atom, alert_sink_ptr>,
    caf::replies_to<alert_count_atom>::with<alert_counts>,
    caf::replies_to<alert_take_shards_atom, std::vector<uint32_t>>::with<bool>,  // shard hand-off
    caf::replies_to<alert_drop_shards_atom, std::vector<uint32_t>>::with<bool>,
    caf::replies_to<alert_adopt_atom, std::string>::with<bool>,  // a patient moved in
    caf::reacts_to<alert_erase_atom, alert_erasure>>;

/// Spawns the node's alert hub. It owns the lifecycle of every alert:
/// raised by patient twins, updated and resolved by them, acknowledged by
/// clinicians; each change is persisted (record + event) and made durable
/// before it is fanned out to subscribers (group commit: one WAL sync per
/// burst of changes). Its messages: alert_hub_actor.
/// `store` and `metrics` must outlive the actor.
alert_hub_actor spawn_alert_hub(caf::actor_system& sys, const alert_hub_settings& settings,
                                storage::store& store, prometheus::Registry& metrics);

/// Errors of the alert hub (category atom "alerts").
enum class alert_errc : uint8_t {
  not_found = 1,  ///< no alert of that name
  already_resolved,
  persist_failed,  ///< the store refused the write (context says why)
  invalid_silence,  ///< duration out of range
};
std::string to_string(alert_errc x);

/// Converts between alert records and their persisted form.
std::string serialize(const alert_record& a);
bool parse(std::string_view bytes, alert_record& out);
std::string serialize(const alert_event& e);
bool parse(std::string_view bytes, alert_event& out);

}  // namespace healthtwin::actors

CAF_ERROR_CODE_ENUM(healthtwin::actors::alert_errc, "alerts")
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_filter)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_silence)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::erase_completion_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_sink_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_counts)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<healthtwin::actors::alert_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_update)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_resolution)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_kind_resolution)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_action)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(healthtwin::actors::alert_erasure)
