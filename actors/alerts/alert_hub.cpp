#include "actors/alerts/alert_hub.hpp"

#include "actors/alerts/alert_codec.hpp"
#include "actors/alerts/alert_lifecycle.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <unordered_map>

#include <caf/all.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "storage/alert_table.hpp"
#include "storage/erasure.hpp"
#include "storage/store.hpp"

namespace healthtwin::actors {

std::string to_string(alert_errc x) {
  switch (x) {
    case alert_errc::not_found: return "not_found";
    case alert_errc::already_resolved: return "already_resolved";
    case alert_errc::persist_failed: return "persist_failed";
    case alert_errc::invalid_silence: return "invalid_silence";
  }
  return "unknown";
}

bool alert_filter::matches(const alert_record& a) const {
  return models::tenant_of(a.name) == tenant && (ward.empty() || a.ward == ward) &&
         a.level >= min_priority && (patient.empty() || a.patient == patient) &&
         (states == 0 || (states & (1u << static_cast<unsigned>(a.state))) != 0);
}

namespace {

// The resource an alert belongs to: its patient, or its device.
std::string_view owner_of(const alert_record& a) {
  return a.patient.empty() ? std::string_view{a.device} : std::string_view{a.patient};
}

}  // namespace

// ---- the hub actor ---------------------------------------------------------------

namespace {

/// Prometheus instruments of the alert hub; no per-patient labels.
class alert_probe {
public:
  explicit alert_probe(prometheus::Registry& reg)
      : events_(prometheus::BuildCounter()
                    .Name("healthtwin_alerts_events_total")
                    .Help("Alert lifecycle events by type")
                    .Register(reg)),
        active_(prometheus::BuildGauge()
                    .Name("healthtwin_alerts_active")
                    .Help("Alerts not yet resolved, by priority")
                    .Register(reg)),
        persist_failures_(prometheus::BuildCounter()
                              .Name("healthtwin_alerts_persist_failures_total")
                              .Help("Alert changes the store refused (still fanned out)")
                              .Register(reg)
                              .Add({})),
        subscribers_(prometheus::BuildGauge()
                         .Name("healthtwin_alerts_subscribers")
                         .Help("Live alert stream subscribers")
                         .Register(reg)
                         .Add({})),
        latency_(prometheus::BuildHistogram()
                     .Name("healthtwin_alerts_reading_to_alert_seconds")
                     .Help("From the commit of the reading that raised an alert to its fan-out, durable, to "
                           "subscribers")
                     .Register(reg)
                     .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                      0.1, 0.25, 0.5, 1, 2.5, 5, 10})) {
    for (auto t : {"raised", "updated", "acknowledged", "resolved", "escalated", "silenced"})
      event_counters_.push_back(&events_.Add({{"type", t}}));
    for (auto p : {"low", "medium", "high"})
      active_gauges_.push_back(&active_.Add({{"priority", p}}));
  }

  void on_event(alert_event_type t) { event_counters_[static_cast<size_t>(t) - 1]->Increment(); }
  void on_persist_failure() { persist_failures_.Increment(); }
  void set_active(const alert_counts& c) {
    active_gauges_[0]->Set(static_cast<double>(c.low));
    active_gauges_[1]->Set(static_cast<double>(c.medium));
    active_gauges_[2]->Set(static_cast<double>(c.high));
  }
  void set_subscribers(size_t n) { subscribers_.Set(static_cast<double>(n)); }
  void on_fanned_out(int64_t latency_ms) { latency_.Observe(static_cast<double>(latency_ms) / 1000); }

private:
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Gauge>& active_;
  prometheus::Counter& persist_failures_;
  prometheus::Gauge& subscribers_;
  prometheus::Histogram& latency_;
  std::vector<prometheus::Counter*> event_counters_;
  std::vector<prometheus::Gauge*> active_gauges_;
};

struct hub_state {
  static constexpr const char* name = "alert_hub";

  storage::store* store = nullptr;
  std::unique_ptr<storage::alert_table> table;
  std::unique_ptr<alert_probe> probe;
  alert_hub_settings settings;
  uint64_t last_sequence = 0;
  std::unordered_map<std::string, alert_record> open;  // active or acknowledged
  std::deque<alert_record> recent_resolved;
  std::vector<alert_sink_ptr> sinks;
  std::vector<alert_event> unsynced;  // written, awaiting the group's WAL sync
  std::vector<alert_silence> silences;
  bool flush_scheduled = false;
  // When this hub started (node time): alerts of readings committed before
  // (a log replay after a restart) do not count in the latency metric.
  int64_t started_ms = 0;

  alert_lifecycle rules{{}};

  int64_t now() const { return settings.clock ? settings.clock() : models::wall_clock_ms(); }

  // An erased owner's alerts vanish without events: an event would carry
  // the patient's data again. The hub is the last actor to hear of an
  // erasure (after the twin's last write), so it deletes every record of
  // the patient, snapshot and series included.
  void erase_owner(const std::string& owner) {
    for (auto i = open.begin(); i != open.end();)
      i = owner_of(i->second) == owner ? open.erase(i) : std::next(i);
    recent_resolved.erase(std::remove_if(recent_resolved.begin(), recent_resolved.end(),
                                         [&](const alert_record& a) { return owner_of(a) == owner; }),
                          recent_resolved.end());
    silences.erase(std::remove_if(silences.begin(), silences.end(),
                                  [&](const alert_silence& x) { return x.patient == owner; }),
                   silences.end());
    if (auto err = storage::erase_patient_records(*store, owner)) {
      probe->on_persist_failure();
      spdlog::error("alert hub: deleting an erased owner's records failed: {}",
                    storage::describe(err));
    }
    probe->set_active(counts());
    if (settings.index)
      settings.index->remove(owner);
  }

  // The open alerts of the patients in `owners`, into the twin index.
  template <class Owners>
  void summarise(const Owners& owners) {
    if (!settings.index)
      return;
    for (auto& owner : owners) {
      auto name = models::parse_twin_name(owner);
      if (!name || name->kind != models::twin_kind::patient)
        continue;  // an unassigned device's alerts
      auto highest = models::priority::none;
      uint32_t n = 0;
      for (auto& [_, a] : open)
        if (owner_of(a) == owner) {
          highest = std::max(highest, a.level);
          ++n;
        }
      settings.index->set_alerts(std::string{owner}, highest, n);
    }
  }

  alert_counts counts() const {
    alert_counts c;
    for (auto& [_, a] : open) {
      if (a.level == models::priority::high) ++c.high;
      else if (a.level == models::priority::medium) ++c.medium;
      else if (a.level == models::priority::low) ++c.low;
    }
    return c;
  }

  // Writes the alert and a new event (not yet synced) and queues the event
  // for fan-out. A store failure is counted and logged but never stops the
  // alert reaching clinicians.
  void publish(alert_event_type type, const alert_record& a) {
    alert_event e{++last_sequence, type, a, now()};
    storage::write_batch batch{*store};
    auto id = models::parse_alert_name(a.name);
    auto err = table->put(batch, owner_of(a), id ? id->id : std::string_view{a.name},
                          serialize(a), a.state != alert_state::resolved);
    if (!err)
      err = table->put_event(batch, e.sequence, owner_of(a), serialize(e));
    if (!err)
      err = store->write(batch, false);
    if (err) {
      probe->on_persist_failure();
      spdlog::error("alert hub: persisting an alert event failed: {}", storage::describe(err));
    }
    probe->on_event(type);
    unsynced.push_back(std::move(e));
  }

  // Group commit: one WAL sync for every event written since the last
  // flush, then fan-out. Subscribers never see an event that is not durable.
  void flush() {
    flush_scheduled = false;
    if (unsynced.empty())
      return;
    if (auto err = store->sync_wal()) {
      probe->on_persist_failure();
      spdlog::error("alert hub: syncing alert events failed: {}", storage::describe(err));
    }
    probe->set_active(counts());
    std::set<std::string_view> owners;
    for (auto& e : unsynced)
      owners.insert(owner_of(e.alert));
    summarise(owners);
    if (settings.changes)  // the twins' watchers read the alerts again
      for (auto owner : owners)
        settings.changes->touched(owner);
    auto before = sinks.size();
    sinks.erase(std::remove_if(sinks.begin(), sinks.end(),
                               [](const alert_sink_ptr& s) { return s->closed(); }),
                sinks.end());
    if (sinks.size() != before)
      probe->set_subscribers(sinks.size());
    auto t = now();
    for (auto& e : unsynced) {
      for (auto& s : sinks)
        if (s->filter.matches(e.alert))
          s->push(e);
      if (e.type == alert_event_type::raised && e.alert.committed_ms >= started_ms && e.alert.committed_ms <= t)
        probe->on_fanned_out(t - e.alert.committed_ms);
    }
    unsynced.clear();
  }

  void remember_resolved(alert_record a) {
    recent_resolved.push_front(std::move(a));
    while (recent_resolved.size() > settings.recent_resolved)
      recent_resolved.pop_back();
  }

  // In a cluster, the hub keeps only its own shards' alerts: a twin of a
  // shard just handed over may still raise one.
  bool owned(std::string_view owner) const {
    return !settings.owns || settings.owns(models::shard_of(owner, store->shards()));
  }

  // Loads the active alerts and silences of `shards` (all when empty) that
  // this node owns; of `only` alone when it is set.
  void load(const std::vector<uint32_t>& shards, std::string_view only = {}) {
    std::set<std::string> owners;
    auto each = [&](std::optional<uint32_t> shard) {
      auto err = table->scan_active(
          [&](std::string_view bytes) {
            alert_record a;
            if (parse(bytes, a) && owned(owner_of(a)) && (only.empty() || owner_of(a) == only)) {
              owners.insert(std::string{owner_of(a)});
              open.emplace(a.name, std::move(a));
            }
          },
          shard);
      if (err)
        spdlog::error("alert hub: loading active alerts failed: {}", storage::describe(err));
      err = table->scan_silences(
          [&](std::string_view bytes) {
            alert_silence x;
            if (parse(bytes, x) && owned(x.patient) && (only.empty() || x.patient == only))
              silences.push_back(std::move(x));
          },
          shard);
      if (err)
        spdlog::error("alert hub: loading silences failed: {}", storage::describe(err));
    };
    if (shards.empty())
      each(std::nullopt);
    for (auto sh : shards)
      each(sh);
    probe->set_active(counts());
    summarise(owners);
  }

  // Forgets what the hub holds of `shards` (handed to another member).
  void drop(const std::vector<uint32_t>& shards) {
    std::set<uint32_t> set(shards.begin(), shards.end());
    auto gone = [&](std::string_view owner) {
      return set.count(models::shard_of(owner, store->shards())) > 0;
    };
    for (auto i = open.begin(); i != open.end();)
      i = gone(owner_of(i->second)) ? open.erase(i) : std::next(i);
    recent_resolved.erase(std::remove_if(recent_resolved.begin(), recent_resolved.end(),
                                         [&](const alert_record& a) { return gone(owner_of(a)); }),
                          recent_resolved.end());
    silences.erase(std::remove_if(silences.begin(), silences.end(),
                                  [&](const alert_silence& x) { return gone(x.patient); }),
                   silences.end());
    probe->set_active(counts());
  }

  void raise(alert_record a) {
    if (open.count(a.name) || !owned(owner_of(a)))
      return;
    auto id = models::parse_alert_name(a.name);
    if (!id)
      return;
    // A replayed twin raises the same alert again: the stored record wins.
    auto existing = table->get(owner_of(a), id->id);
    if (existing && *existing)
      return;
    rules.raise(a, now(), silences);
    open.emplace(a.name, a);
    publish(alert_event_type::raised, a);
  }

  void update(const std::string& name, models::priority level, double value,
              std::string message, int64_t predicted_ms) {
    auto i = open.find(name);
    if (i == open.end())
      return;
    rules.update(i->second, level, value, std::move(message), predicted_ms, now());
    publish(alert_event_type::updated, i->second);
  }

  // Takes an open alert out as resolved (`fill` records how), persists the
  // event and keeps it among the recently resolved.
  template <class Fill>
  alert_record close(std::unordered_map<std::string, alert_record>::iterator i, Fill fill) {
    auto a = std::move(i->second);
    open.erase(i);
    fill(a);
    publish(alert_event_type::resolved, a);
    remember_resolved(a);
    return a;
  }

  void resolve(const std::string& name, double value, int64_t time_ms) {
    auto i = open.find(name);
    if (i == open.end())
      return;
    close(i, [&](alert_record& a) { alert_lifecycle::resolve(a, value, time_ms); });
  }

  // Resolves every open alert of `owner` of kind `k` (a device's own
  // technical alerts, which the device twin does not track by name).
  void resolve_kind(const std::string& owner, models::alert_kind k, int64_t time_ms) {
    std::vector<std::string> names;
    for (auto& [name, a] : open)
      if (a.kind == k && owner_of(a) == owner)
        names.push_back(name);
    for (auto& n : names)
      resolve(n, 0, time_ms);
  }

  // Why an alert that is not open cannot be changed.
  caf::error not_open(const std::string& name) {
    for (auto& r : recent_resolved)
      if (r.name == name)
        return caf::make_error(alert_errc::already_resolved);
    auto id = models::parse_alert_name(name);
    if (id) {
      auto stored = table->get(id->owner, id->id);
      alert_record rec;
      if (stored && *stored && parse(**stored, rec) && rec.state == alert_state::resolved)
        return caf::make_error(alert_errc::already_resolved);
    }
    return caf::make_error(alert_errc::not_found);
  }

  caf::expected<alert_record> resolve_by_hand(const std::string& name, const std::string& who,
                                              const std::string& note) {
    auto i = open.find(name);
    if (i == open.end())
      return not_open(name);
    auto a = close(i, [&](alert_record& r) { alert_lifecycle::resolve_by_hand(r, who, note, now()); });
    flush();  // durable before the clinician is told it is done
    return a;
  }

  caf::expected<std::vector<alert_record>> silence(alert_silence s) {
    if (!alert_lifecycle::silence_allowed(s, now()))
      return caf::make_error(alert_errc::invalid_silence);
    storage::write_batch batch{*store};
    table->put_silence(batch, s.patient, silence_key(s.subject), serialize(s));
    if (auto err = store->write(batch, false)) {
      probe->on_persist_failure();
      return caf::make_error(alert_errc::persist_failed, storage::describe(err));
    }
    std::vector<alert_record> out;
    for (auto& [_, a] : open)
      if (alert_lifecycle::apply_silence(a, s)) {
        publish(alert_event_type::silenced, a);
        out.push_back(a);
      }
    silences.erase(std::remove_if(silences.begin(), silences.end(),
                                  [&](const alert_silence& x) {
                                    return x.patient == s.patient && x.subject == s.subject;
                                  }),
                   silences.end());
    silences.push_back(std::move(s));
    flush();
    return out;
  }

  // Re-notifies unacknowledged alerts of escalating priority whose last
  // notification is older than the escalation time (silenced ones wait).
  void escalate() {
    auto t = now();
    for (auto& [_, a] : open)
      if (rules.escalate(a, t))
        publish(alert_event_type::escalated, a);
    // Expired silences are forgotten (and deleted from the store).
    auto expired = std::stable_partition(silences.begin(), silences.end(),
                                         [&](const alert_silence& s) { return s.until_ms > t; });
    if (expired != silences.end()) {
      storage::write_batch batch{*store};
      for (auto i = expired; i != silences.end(); ++i)
        table->erase_silence(batch, i->patient, silence_key(i->subject));
      if (auto err = store->write(batch, false))
        spdlog::warn("alert hub: deleting expired silences failed: {}", storage::describe(err));
      silences.erase(expired, silences.end());
    }
  }

  caf::expected<alert_record> acknowledge(const std::string& name, const std::string& who,
                                          const std::string& note) {
    auto i = open.find(name);
    if (i == open.end())
      return not_open(name);
    auto& a = i->second;
    rules.acknowledge(a, who, note, now());
    publish(alert_event_type::acknowledged, a);
    flush();  // durable before the clinician is told it is done
    return a;
  }

  std::vector<alert_record> list(const alert_filter& f, bool include_resolved) const {
    std::vector<alert_record> out;
    for (auto& [_, a] : open)
      if (f.matches(a))
        out.push_back(a);
    if (include_resolved)
      for (auto& a : recent_resolved)
        if (f.matches(a))
          out.push_back(a);
    std::sort(out.begin(), out.end(), [](const alert_record& x, const alert_record& y) {
      return std::tie(x.raise_time_ms, x.name) > std::tie(y.raise_time_ms, y.name);
    });
    return out;
  }

  std::vector<alert_record> of_patient(const std::string& patient) const {
    std::vector<alert_record> out;
    for (auto& [_, a] : open)
      if (a.patient == patient)
        out.push_back(a);
    std::sort(out.begin(), out.end(), [](const alert_record& x, const alert_record& y) {
      return x.level > y.level || (x.level == y.level && x.raise_time_ms > y.raise_time_ms);
    });
    return out;
  }
};

// A typed reply from what the hub's state answers.
template <class T>
caf::result<T> answer(caf::expected<T>&& x) {
  if (!x)
    return std::move(x.error());
  return std::move(*x);
}

alert_hub_actor::behavior_type alert_hub(alert_hub_actor::stateful_pointer<hub_state> self,
                                         alert_hub_settings settings,
                        storage::store* store, prometheus::Registry* metrics) {
  auto& st = self->state;
  st.store = store;
  st.settings = settings;
  st.rules = alert_lifecycle{{settings.escalate_after_ms, settings.escalate_priority}};
  st.started_ms = st.now();
  st.table = std::make_unique<storage::alert_table>(*store);
  st.probe = std::make_unique<alert_probe>(*metrics);
  if (auto last = st.table->last_event_sequence())
    st.last_sequence = *last;
  else
    spdlog::error("alert hub: reading the event log failed: {}", storage::describe(last.error()));
  st.load({});
  // The most recently resolved alerts, for ListAlerts(include_resolved),
  // from the tail of the event log (each resolves once: no duplicates).
  auto tail = 4 * st.settings.recent_resolved;
  auto err = st.table->scan_events(st.last_sequence > tail ? st.last_sequence - tail : 0,
                              [&](uint64_t, std::string_view bytes) {
                                alert_event e;
                                if (parse(bytes, e) && e.type == alert_event_type::resolved &&
                                    st.owned(owner_of(e.alert)))
                                  st.remember_resolved(std::move(e.alert));
                                return true;
                              });
  if (err)
    spdlog::error("alert hub: loading resolved alerts failed: {}", storage::describe(err));
  auto check_every = std::chrono::milliseconds{settings.escalation_check_ms};
  if (settings.escalation_check_ms > 0)
    self->delayed_send(self, check_every, alert_escalate_atom::value);
  // After a change, a flush message goes to the back of the mailbox: every
  // change already queued is handled before the group is synced.
  auto schedule_flush = [=] {
    auto& s = self->state;
    if (!s.flush_scheduled && !s.unsynced.empty()) {
      s.flush_scheduled = true;
      self->send(self, alert_flush_atom::value);
    }
  };
  return {
      [=](alert_raise_atom, alert_record& a) {
        self->state.raise(std::move(a));
        schedule_flush();
      },
      [=](alert_update_atom, alert_update& u) {
        self->state.update(u.name, u.level, u.value, std::move(u.message), u.predicted_ms);
        schedule_flush();
      },
      [=](alert_resolve_atom, const alert_resolution& r) {
        self->state.resolve(r.name, r.value, r.time_ms);
        schedule_flush();
      },
      [=](alert_flush_atom) { self->state.flush(); },
      [=](alert_resolve_kind_atom, const alert_kind_resolution& r) {
        self->state.resolve_kind(r.owner, r.kind, r.time_ms);
        schedule_flush();
      },
      [=](alert_ack_atom, const alert_action& a) -> caf::result<alert_record> {
        return answer(self->state.acknowledge(a.name, a.who, a.note));
      },
      [=](alert_list_atom, const alert_filter& f, bool include_resolved) {
        return self->state.list(f, include_resolved);
      },
      [=](alert_list_atom, const std::string& patient) { return self->state.of_patient(patient); },
      [=](alert_sub_atom, const alert_sink_ptr& sink) {
        self->state.flush();  // the subscriber's start token must be durable
        self->state.sinks.push_back(sink);
        self->state.probe->set_subscribers(self->state.sinks.size());
        return self->state.last_sequence;
      },
      [=](alert_unsub_atom, const alert_sink_ptr& sink) {
        auto& sinks = self->state.sinks;
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
        self->state.probe->set_subscribers(sinks.size());
      },
      [=](alert_count_atom) { return self->state.counts(); },
      [=](alert_resolve_by_atom, const alert_action& a) -> caf::result<alert_record> {
        return answer(self->state.resolve_by_hand(a.name, a.who, a.note));
      },
      [=](alert_silence_atom, alert_silence& s) -> caf::result<std::vector<alert_record>> {
        return answer(self->state.silence(std::move(s)));
      },
      [=](alert_take_shards_atom, const std::vector<uint32_t>& shards) {
        self->state.load(shards);
        return true;
      },
      [=](alert_adopt_atom, const std::string& patient) {
        auto& st = self->state;
        st.load({models::shard_of(patient, st.store->shards())}, patient);
        return true;
      },
      [=](alert_drop_shards_atom, const std::vector<uint32_t>& shards) {
        self->state.drop(shards);
        return true;
      },
      [=](alert_erase_atom, const alert_erasure& e) {
        self->state.erase_owner(e.owner);  // the completion runs as the message goes
      },
      [=](alert_escalate_atom) {
        self->state.escalate();
        schedule_flush();
        if (self->current_sender() == self &&
            self->state.settings.escalation_check_ms > 0)
          self->delayed_send(self, check_every, alert_escalate_atom::value);
      },
  };
}

}  // namespace

alert_hub_actor spawn_alert_hub(caf::actor_system& sys, const alert_hub_settings& settings,
                           storage::store& store, prometheus::Registry& metrics) {
  return sys.spawn(alert_hub, settings, &store, &metrics);
}

}  // namespace healthtwin::actors
