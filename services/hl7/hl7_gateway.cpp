#include "services/hl7/hl7_gateway.hpp"

#include <cstring>
#include <algorithm>
#include <map>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "actors/models/quoted.hpp"
#include "actors/models/wall_clock.hpp"

namespace healthtwin::hl7 {

namespace {

using models::quoted_input;

// A digest of what the message would store: a resend must carry the same.
std::string content_digest(const std::vector<observation>& obs) {
  std::string data;
  for (auto& o : obs) {
    data += o.device;
    data += '\0';
    char buf[8 + 8 + 1 + 1];
    std::memcpy(buf, &o.time_ms, 8);
    std::memcpy(buf + 8, &o.value, 8);
    buf[16] = static_cast<char>(o.metric);
    buf[17] = static_cast<char>(o.quality);
    data.append(buf, sizeof buf);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), 16);
}

// MSH-10 of a message that does not parse, if its first segment has one.
std::optional<header> header_of_broken(std::string_view text) {
  if (text.size() < 8 || text.substr(0, 3) != "MSH")
    return std::nullopt;
  char sep = text[3];
  auto line = text.substr(0, text.find_first_of("\r\n"));
  std::vector<std::string_view> f;
  size_t start = 3;
  while (start != std::string_view::npos && f.size() < 13) {
    auto end = line.find(sep, start + 1);
    f.push_back(line.substr(start + 1, end == std::string_view::npos ? std::string_view::npos : end - start - 1));
    start = end;
  }
  if (f.size() < 9 || f[8].empty() || f[8].size() > 199)
    return std::nullopt;  // f[0] is MSH-2, so MSH-10 is f[8]
  header h;
  h.sending_application = std::string{f[1].substr(0, 64)};
  h.sending_facility = std::string{f[2].substr(0, 64)};
  h.control_id = std::string{f[8]};
  return h;
}

bool supported_version(std::string_view v) {
  static constexpr std::string_view versions[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"};
  for (auto x : versions)
    if (v == x)
      return true;
  return false;
}

std::string_view reason_text(v1::RejectionReason r) {
  switch (r) {
    case v1::REJECTION_REASON_UNKNOWN_DEVICE: return "the device is not registered";
    case v1::REJECTION_REASON_METRIC_NOT_SUPPORTED: return "the device's type cannot measure it";
    case v1::REJECTION_REASON_OUT_OF_RANGE: return "outside the metric's plausible range";
    case v1::REJECTION_REASON_FUTURE_TIMESTAMP: return "more than 5 minutes ahead of the node's clock";
    case v1::REJECTION_REASON_INVALID_TIMESTAMP: return "before 2000-01-01";
    case v1::REJECTION_REASON_DECOMMISSIONED: return "the device was taken out of service";
    case v1::REJECTION_REASON_OUTSIDE_WINDOW: return "too old to tell from a duplicate; not stored";
    case v1::REJECTION_REASON_UNAVAILABLE: return "the node owning the device could not be reached; resend";
    default: return "refused by the node";
  }
}

}  // namespace

hl7_gateway::hl7_gateway(gateway_settings s, storage::message_journal& journal, ingest_fn ingest, adt_handler* adt)
  : s_(std::move(s)), journal_(journal), ingest_(std::move(ingest)), adt_(adt) {}

hl7_gateway::key_claim::key_claim(hl7_gateway& g, const header& h)
  : g_(g), key_(h.sending_application + '\0' + h.sending_facility + '\0' + h.control_id) {
  std::lock_guard<std::mutex> guard{g_.busy_mtx_};
  held_ = g_.busy_.insert(key_).second;
}

hl7_gateway::key_claim::~key_claim() {
  if (!held_)
    return;
  std::lock_guard<std::mutex> guard{g_.busy_mtx_};
  g_.busy_.erase(key_);
}

std::string hl7_gateway::busy(const message& m, const header& h) {
  return ack(&h, ack_code::error,
             {{m.msh().at(10), err_code::duplicate_key,
               "MSH-10: this message is being taken on another connection; resend after its ACK"}});
}

std::string hl7_gateway::ack(const header* h, ack_code code, std::vector<ack_error> errors) {
  switch (code) {
    case ack_code::accept: ++stats_.accepted; break;
    case ack_code::error: ++stats_.errors; break;
    case ack_code::reject: ++stats_.rejected; break;
  }
  auto id = "HT" + std::to_string(models::wall_clock_ms()) + "-" + std::to_string(next_ack_++);
  return make_ack(h, s_.us, code, errors, id, models::wall_clock_ms());
}

std::string hl7_gateway::too_large(std::string prefix, size_t limit) {
  auto h = header_of_broken(prefix);
  return ack(h ? &*h : nullptr, ack_code::reject,
             {{location{"MSH", 1, 0, 0}, err_code::internal,
               "the message is larger than " + std::to_string(limit) + " bytes; not taken"}});
}

std::string hl7_gateway::handle(std::string text) {
  error why;
  auto first_line = text.substr(0, std::min<size_t>(text.size(), 2048));
  auto m = message::parse(std::move(text), why);
  if (!m) {
    auto broken = header_of_broken(first_line);
    return ack(broken ? &*broken : nullptr, ack_code::reject, {{why.where, err_code::data_type, why.what}});
  }
  auto h = read_header(*m, why);
  if (!h) {
    auto broken = header_of_broken(m->text());
    return ack(broken ? &*broken : nullptr, ack_code::reject, {{why.where, err_code::required_field_missing, why.what}});
  }
  if (!supported_version(h->version))
    return ack(&*h, ack_code::reject,
               {{m->msh().at(12), err_code::unsupported_version,
                 "MSH-12: version " + quoted_input(h->version) + " is not one of 2.3-2.8"}});
  if (h->processing_id.size() != 1 || s_.processing_ids.find(h->processing_id) == std::string::npos)
    return ack(&*h, ack_code::reject,
               {{m->msh().at(11), err_code::unsupported_processing_id,
                 "MSH-11: processing id " + quoted_input(h->processing_id) + " is not taken here (" +
                     s_.processing_ids + ")"}});
  if (h->message_type == "ADT") {
    static constexpr std::string_view events[] = {"A01", "A02", "A03", "A08"};
    if (!adt_)
      return ack(&*h, ack_code::reject,
                 {{m->msh().at(9, 1), err_code::unsupported_message_type,
                   "MSH-9: ADT is not taken by this gateway (started without --bed-map)"}});
    if (std::find(std::begin(events), std::end(events), h->trigger_event) == std::end(events))
      return ack(&*h, ack_code::reject,
                 {{m->msh().at(9, 2), err_code::unsupported_event,
                   "MSH-9: ADT event " + quoted_input(h->trigger_event) + " is not taken here (A01 A02 A03 A08)"}});
    return handle_adt(*m, *h);
  }
  if (h->message_type != "ORU")
    return ack(&*h, ack_code::reject,
               {{m->msh().at(9, 1), err_code::unsupported_message_type,
                 "MSH-9: message type " + quoted_input(h->message_type) + " is not taken here (ORU^R01, ADT)"}});
  if (h->trigger_event != "R01")
    return ack(&*h, ack_code::reject,
               {{m->msh().at(9, 2), err_code::unsupported_event,
                 "MSH-9: event " + quoted_input(h->trigger_event) + " is not taken here (ORU^R01)"}});
  return handle_oru(*m, *h);
}

std::string hl7_gateway::handle_oru(const message& m, const header& h) {
  error why;
  auto content = read_pcd01(m, why);
  if (!content)
    return ack(&h, ack_code::error, {{why.where, err_code::data_type, why.what + "; no observation of this message was stored"}});
  auto& obs = content->observations;
  if (obs.empty())
    return ack(&h, ack_code::accept, {});

  key_claim claim{*this, h};
  if (!claim.held())
    return busy(m, h);
  auto& key = claim.key();

  auto digest = content_digest(obs);
  auto record = journal_.find(key);
  if (record) {
    if (record->digest != digest)
      return ack(&h, ack_code::error,
                 {{m.msh().at(10), err_code::duplicate_key,
                   "MSH-10: " + quoted_input(h.control_id) +
                       " was already used by this sender for a message with other observations; not stored"}});
    ++stats_.resent;
    if (record->acked)
      return ack(&h, ack_code::accept, {});
  } else {
    std::vector<std::pair<std::string, uint32_t>> counts;
    for (auto& o : obs) {
      auto it = std::find_if(counts.begin(), counts.end(), [&](auto& c) { return c.first == o.device; });
      if (it == counts.end())
        counts.emplace_back(o.device, 1);
      else
        ++it->second;
    }
    auto assigned = journal_.assign(key, digest, counts, models::wall_clock_ms());
    if (!assigned) {
      spdlog::error("hl7: the message journal failed: {}", to_string(assigned.error()));
      return ack(&h, ack_code::error,
                 {{std::nullopt, err_code::internal, "the gateway cannot record the message now; resend"}});
    }
    record = std::move(*assigned);
  }

  // One DeviceReadings per device, readings in message order.
  v1::IngestRequest req;
  std::vector<const observation*> order;  // request index -> observation
  for (auto& [device, first] : record->first_sequence) {
    auto* d = req.add_devices();
    d->set_device("tenants/" + s_.tenant + "/devices/" + device);
    uint64_t seq = first;
    bool flagged = std::any_of(obs.begin(), obs.end(), [&](const observation& o) {
      return o.device == device && o.quality != models::reading_quality::unspecified;
    });
    for (auto& o : obs) {
      if (o.device != device)
        continue;
      d->add_sequence(seq++);
      d->add_time_ms(o.time_ms);
      d->add_metric(static_cast<v1::Metric>(o.metric));
      d->add_value(o.value);
      if (flagged)
        d->add_quality(static_cast<v1::ReadingQuality>(o.quality));
      order.push_back(&o);
    }
  }
  v1::IngestResponse resp;
  auto st = ingest_(req, resp);
  if (!st.ok())
    return ack(&h, ack_code::error,
               {{std::nullopt, err_code::internal,
                 "the node did not take the readings (" + models::bounded(st.error_message(), 120) + "); resend"}});
  std::vector<ack_error> errors;
  for (auto& r : resp.rejections()) {
    if (r.reason() == v1::REJECTION_REASON_DUPLICATE)
      continue;
    auto* o = r.index() < order.size() ? order[r.index()] : nullptr;
    errors.push_back({o ? std::optional<location>{o->where} : std::nullopt, err_code::table_value_not_found,
                      (o ? std::string{models::to_string(o->metric)} + ": " : std::string{}) +
                          std::string{reason_text(r.reason())}});
  }
  if (errors.empty()) {
    if (auto err = journal_.mark_acked(key))
      spdlog::warn("hl7: cannot mark a message acknowledged in the journal: {}", to_string(err));
    return ack(&h, ack_code::accept, {});
  }
  // Not marked acknowledged: a resend goes to the node again with the same
  // numbers (what was stored comes back DUPLICATE; the rest is tried again).
  return ack(&h, ack_code::error, std::move(errors));
}

std::string hl7_gateway::handle_adt(const message& m, const header& h) {
  error why;
  auto event = read_adt(m, h.trigger_event, why);
  if (!event)
    return ack(&h, ack_code::error, {{why.where, err_code::required_field_missing, why.what}});
  key_claim claim{*this, h};
  if (!claim.held())
    return busy(m, h);
  auto& key = claim.key();
  auto& e = *event;
  auto digest = e.trigger + '\0' + e.patient_id + '\0' + e.location.key() + '\0' + e.prior.key();
  auto record = journal_.find(key);
  if (record) {
    if (record->digest != digest)
      return ack(&h, ack_code::error,
                 {{m.msh().at(10), err_code::duplicate_key,
                   "MSH-10: " + quoted_input(h.control_id) + " was already used by this sender for another event"}});
    ++stats_.resent;
    if (record->acked)
      return ack(&h, ack_code::accept, {});
  } else if (auto assigned = journal_.assign(key, digest, {}, models::wall_clock_ms()); !assigned) {
    return ack(&h, ack_code::error, {{std::nullopt, err_code::internal, "the gateway cannot record the message now; resend"}});
  }
  auto errors = adt_->apply(e);
  if (!errors.empty())
    return ack(&h, ack_code::error, std::move(errors));  // a resend applies what is missing
  if (auto err = journal_.mark_acked(key))
    spdlog::warn("hl7: cannot mark a message acknowledged in the journal: {}", to_string(err));
  return ack(&h, ack_code::accept, {});
}

}  // namespace healthtwin::hl7
