#include "services/http/fhir_endpoint.hpp"

#include <ctime>
#include <optional>
#include <thread>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"
#include "actors/models/wall_clock.hpp"
#include "services/http/fhir_export.hpp"
#include "services/http/fhir_subscriptions.hpp"

namespace healthtwin::services {

namespace {

constexpr int64_t day_ms = 86'400'000;

std::string bounded(std::string_view s) {
  return models::bounded(s, 64);
}

// FHIR date or dateTime in UTC (YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss[.fff]Z)
// as Unix milliseconds.
std::optional<int64_t> parse_instant(const std::string& text) {
  std::tm tm{};
  int ms = 0;
  char rest[8] = {};
  int n = 0;
  if (text.size() == 10 && std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) == 3 &&
      n == 10) {
  } else if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%7s", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec, rest) == 7) {
    std::string r = rest;
    auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
    if (r.size() == 5 && r[0] == '.' && r[4] == 'Z' && digit(r[1]) && digit(r[2]) && digit(r[3]))
      ms = std::stoi(r.substr(1, 3));
    else if (r != "Z")
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60 || tm.tm_year < 1970 || tm.tm_year > 9999)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// The value of `key` in the query; nullopt when absent.
std::optional<std::string> query_value(std::string_view target, std::string_view key) {
  auto q = target.find('?');
  if (q == std::string_view::npos)
    return std::nullopt;
  auto query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    if (auto eq = pair.find('='); pair.substr(0, eq) == key) {
      std::string v;
      auto raw = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
      for (size_t i = 0; i < raw.size(); ++i) {  // percent-decoding
        if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
          v += static_cast<char>(std::stoi(std::string{raw.substr(i + 1, 2)}, nullptr, 16));
          i += 2;
        } else {
          v += raw[i] == '+' ? ' ' : raw[i];
        }
      }
      return v;
    }
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace

void fhir_endpoint::attach(std::shared_ptr<grpc::Channel> api) {
  std::lock_guard<std::mutex> guard{mtx_};
  api_ = std::move(api);
}

void fhir_endpoint::stop() {
  std::unique_lock<std::mutex> lock{mtx_};
  stopping_ = true;
  idle_.wait(lock, [&] { return running_ == 0; });
  api_.reset();
  subs_ = nullptr;
}

void fhir_endpoint::attach_subscriptions(fhir_subscriptions* subs) {
  std::lock_guard<std::mutex> guard{mtx_};
  subs_ = subs;
}

// Runs `work` on a thread of its own, counted among the running requests.
template <class Work>
void fhir_endpoint::off_listener(std::shared_ptr<http_responder> out, Work work) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_ || !api_)
      return out->reply(fhir_outcome_response(503, "transient", stopping_ ? "the node is stopping" : "the node is starting"));
    if (running_ >= max_running_)
      return out->reply(fhir_outcome_response(429, "throttled", "too many FHIR requests at once on this node: try again shortly"));
    ++running_;
  }
  std::thread([this, out = std::move(out), work = std::move(work)]() mutable {
    out->reply(work());
    std::lock_guard<std::mutex> guard{mtx_};
    --running_;
    idle_.notify_all();
  }).detach();
}

void fhir_endpoint::handle(const http_request& req, std::shared_ptr<http_responder> out) {
  auto path = std::string_view{req.target}.substr(0, req.target.find('?'));
  std::vector<std::string_view> parts;
  for (auto rest = path.substr(1); !rest.empty();) {
    auto slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos)
      break;
    rest.remove_prefix(slash + 1);
  }
  if (parts.size() >= 3 && parts.size() <= 5 && parts[2] == "Subscription") {
    fhir_subscriptions* subs = nullptr;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      subs = subs_;
    }
    if (!subs)
      return out->reply(fhir_outcome_response(404, "not-supported", "this node holds no FHIR subscriptions"));
    std::vector<std::string> segments{parts.begin(), parts.end()};
    return off_listener(std::move(out), [subs, req, segments = std::move(segments)] {
      return subs->answer(req, segments);
    });
  }
  if (req.method != "GET")
    return out->reply(fhir_outcome_response(405, "not-supported", "use GET"));
  // /fhir/{tenant}/Patient/{id}/$everything
  if (parts.size() != 5 || parts[0] != "fhir" || parts[2] != "Patient" || parts[4] != "$everything")
    return out->reply(fhir_outcome_response(404, "not-found", "the paths are /fhir/{tenant}/Patient/{id}/$everything and "
                                                "/fhir/{tenant}/Subscription, not " + bounded(path)));
  if (!models::is_valid_id(parts[1]) || !models::is_valid_id(parts[3]))
    return out->reply(fhir_outcome_response(400, "invalid", "tenant and patient id: 1-63 characters of [a-z0-9-]"));
  if (auto format = query_value(req.target, "_format");
      format && *format != "json" && *format != "application/fhir+json" && *format != "application/json")
    return out->reply(fhir_outcome_response(406, "not-supported", "_format: only json (application/fhir+json)"));
  fhir_export_request r;
  r.tenant = std::string{parts[1]};
  r.patient_id = std::string{parts[3]};
  auto now = models::wall_clock_ms();
  r.end_ms = now;
  for (auto [key, into] : {std::pair{"end", &r.end_ms}, std::pair{"start", &r.start_ms}}) {
    if (auto v = query_value(req.target, key)) {
      auto t = parse_instant(*v);
      if (!t)
        return out->reply(fhir_outcome_response(400, "invalid", std::string{key} + ": a date (YYYY-MM-DD) or a UTC dateTime "
                                                                     "(YYYY-MM-DDThh:mm:ss[.fff]Z), not " + bounded(*v)));
      *into = *t;
    } else if (into == &r.start_ms) {
      r.start_ms = r.end_ms - day_ms;
    }
  }
  if (r.start_ms >= r.end_ms || r.end_ms - r.start_ms > 31 * day_ms)
    return out->reply(fhir_outcome_response(400, "invalid", "start must be before end, at most 31 days apart"));
  auto auth = std::string{req.header("authorization")};
  r.token = auth.starts_with("Bearer ") ? auth.substr(7) : std::string{};
  r.base_url = fhir_base_url(req, r.tenant);
  std::shared_ptr<grpc::Channel> api;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    api = api_;
  }
  off_listener(std::move(out), [api, r = std::move(r)] {
    auto result = export_patient_fhir(api, r, std::chrono::seconds(60));
    return http_response{result.http_status, std::string{fhir_json}, std::move(result.json)};
  });
}

}  // namespace healthtwin::services
