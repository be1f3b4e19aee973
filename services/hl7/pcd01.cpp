#include "services/hl7/pcd01.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"

namespace healthtwin::hl7 {

namespace {

using models::metric;
using models::reading_quality;

/// An observation code we chart: its MDC code number and reference id.
struct code_row {
  std::string_view code;
  std::string_view refid;
  metric m;
  bool fallback;  ///< taken only when the frame has no primary reading of m
};

// IEEE 11073-10101 codes (docs/hl7.md). Arterial (invasive) pressures are
// recognised by senders but not charted here: the twin's blood pressure is
// the cuff's, and a monitor sends both in one frame.
constexpr code_row codes[] = {
    {"147842", "MDC_ECG_HEART_RATE", metric::heart_rate, false},
    {"", "MDC_ECG_CARDIAC_RATE", metric::heart_rate, false},
    {"149530", "MDC_PULS_OXIM_PULS_RATE", metric::heart_rate, true},
    {"150456", "MDC_PULS_OXIM_SAT_O2", metric::spo2, false},
    {"151562", "MDC_RESP_RATE", metric::respiration_rate, false},
    {"", "MDC_TTHOR_RESP_RATE", metric::respiration_rate, false},
    {"", "MDC_AWAY_RESP_RATE", metric::respiration_rate, false},
    {"150021", "MDC_PRESS_BLD_NONINV_SYS", metric::systolic_bp, false},
    {"", "MDC_PRESS_CUFF_SYS", metric::systolic_bp, false},
    {"150022", "MDC_PRESS_BLD_NONINV_DIA", metric::diastolic_bp, false},
    {"", "MDC_PRESS_CUFF_DIA", metric::diastolic_bp, false},
    {"150023", "MDC_PRESS_BLD_NONINV_MEAN", metric::mean_arterial_pressure, false},
    {"", "MDC_PRESS_CUFF_MEAN", metric::mean_arterial_pressure, false},
    {"150364", "MDC_TEMP_BODY", metric::temperature, false},
    {"", "MDC_TEMP", metric::temperature, false},
    {"", "MDC_CONC_GLU_BLOOD", metric::glucose, false},
};

const code_row* find_code(std::string_view code, std::string_view refid) {
  for (auto& row : codes)
    if ((!row.code.empty() && row.code == code) || row.refid == refid)
      return &row;
  return nullptr;
}

/// A unit a metric may come in, and how to reach the metric's own unit.
struct unit_row {
  metric m;
  std::string_view token;  ///< an MDC code, MDC reference id or UCUM code
  double scale;
  double offset;
};

constexpr unit_row units[] = {
    {metric::heart_rate, "264864", 1, 0},       {metric::heart_rate, "MDC_DIM_BEAT_PER_MIN", 1, 0},
    {metric::heart_rate, "/min", 1, 0},         {metric::heart_rate, "{beat}/min", 1, 0},
    {metric::heart_rate, "{beats}/min", 1, 0},  {metric::heart_rate, "1/min", 1, 0},
    {metric::spo2, "262688", 1, 0},             {metric::spo2, "MDC_DIM_PERCENT", 1, 0},
    {metric::spo2, "%", 1, 0},                  {metric::respiration_rate, "264928", 1, 0},
    {metric::respiration_rate, "MDC_DIM_RESP_PER_MIN", 1, 0},
    {metric::respiration_rate, "/min", 1, 0},   {metric::respiration_rate, "{breath}/min", 1, 0},
    {metric::respiration_rate, "{breaths}/min", 1, 0},
    {metric::systolic_bp, "266016", 1, 0},      {metric::systolic_bp, "MDC_DIM_MMHG", 1, 0},
    {metric::systolic_bp, "mm[Hg]", 1, 0},      {metric::systolic_bp, "kPa", 7.50062, 0},
    {metric::temperature, "268192", 1, 0},      {metric::temperature, "MDC_DIM_DEGC", 1, 0},
    {metric::temperature, "Cel", 1, 0},         {metric::temperature, "[degF]", 5.0 / 9.0, -32.0 * 5.0 / 9.0},
    {metric::glucose, "mg/dL", 1, 0},           {metric::glucose, "MDC_DIM_MILLI_G_PER_DL", 1, 0},
    {metric::glucose, "mmol/L", 18.016, 0},     {metric::respiration_rate, "1/min", 1, 0},
};

// Diastolic pressure takes systolic's units.
metric unit_family(metric m) {
  return m == metric::diastolic_bp || m == metric::mean_arterial_pressure ? metric::systolic_bp : m;
}

const unit_row* find_unit(metric m, std::string_view token) {
  for (auto& row : units)
    if (row.m == unit_family(m) && row.token == token)
      return &row;
  return nullptr;
}

// HL7 NM: an optional sign, digits, an optional decimal point.
std::optional<double> parse_number(std::string_view s) {
  while (!s.empty() && s.front() == ' ')
    s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ')
    s.remove_suffix(1);
  if (s.empty() || s.size() > 32)
    return std::nullopt;
  size_t digits = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (std::isdigit(static_cast<unsigned char>(c)))
      ++digits;
    else if (!((c == '+' || c == '-') && i == 0) && c != '.')
      return std::nullopt;
  }
  if (digits == 0 || std::count(s.begin(), s.end(), '.') > 1)
    return std::nullopt;
  if (s.front() == '+')
    s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::optional<reading_quality> quality_of(std::string_view status) {
  if (status.empty())
    return reading_quality::unspecified;
  if (status.size() != 1)
    return std::nullopt;
  switch (status[0]) {
    case 'F': case 'C': return reading_quality::valid;
    case 'R': case 'P': case 'S': case 'I': return reading_quality::unvalidated;
    case 'X': return reading_quality::no_signal;
    case 'N': case 'D': case 'W': return reading_quality::invalid;
    default: return std::nullopt;
  }
}

int digits_value(std::string_view s) {
  int v = 0;
  for (char c : s)
    v = v * 10 + (c - '0');
  return v;
}

}  // namespace

std::optional<int64_t> parse_hl7_time(std::string_view ts) {
  // YYYYMMDDHHMM[SS[.S{1,4}]][+/-ZZZZ]
  int offset_min = 0;
  if (auto sign = ts.find_first_of("+-"); sign != std::string_view::npos) {
    auto zone = ts.substr(sign + 1);
    if (zone.size() != 4 || !std::all_of(zone.begin(), zone.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      return std::nullopt;
    int hh = digits_value(zone.substr(0, 2)), mm = digits_value(zone.substr(2));
    if (hh > 14 || mm > 59)
      return std::nullopt;
    offset_min = (ts[sign] == '-' ? -1 : 1) * (hh * 60 + mm);
    ts = ts.substr(0, sign);
  }
  std::string_view fraction;
  if (auto dot = ts.find('.'); dot != std::string_view::npos) {
    fraction = ts.substr(dot + 1);
    ts = ts.substr(0, dot);
    if (ts.size() != 14 || fraction.empty() || fraction.size() > 4)
      return std::nullopt;
  }
  if ((ts.size() != 12 && ts.size() != 14) ||
      !std::all_of(ts.begin(), ts.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
      !std::all_of(fraction.begin(), fraction.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  int y = digits_value(ts.substr(0, 4)), mo = digits_value(ts.substr(4, 2)), d = digits_value(ts.substr(6, 2));
  int h = digits_value(ts.substr(8, 2)), mi = digits_value(ts.substr(10, 2));
  int s = ts.size() == 14 ? digits_value(ts.substr(12, 2)) : 0;
  using namespace std::chrono;
  year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!date.ok() || h > 23 || mi > 59 || s > 59)
    return std::nullopt;
  int64_t ms = duration_cast<milliseconds>(sys_days{date}.time_since_epoch()).count() +
               ((h * 60LL + mi) * 60 + s) * 1000;
  if (!fraction.empty()) {
    int frac = digits_value(fraction);
    for (size_t k = fraction.size(); k < 3; ++k)
      frac *= 10;
    ms += fraction.size() == 4 ? frac / 10 : frac;
  }
  return ms - offset_min * 60'000LL;
}

std::string format_hl7_time(int64_t ms) {
  using namespace std::chrono;
  auto tp = sys_time<milliseconds>{milliseconds{ms}};
  auto day = floor<days>(tp);
  year_month_day ymd{day};
  hh_mm_ss hms{floor<seconds>(tp - day)};
  return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}+0000", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::optional<header> read_header(const message& m, error& why) {
  auto& msh = m.msh();
  header h;
  h.sending_application = m.value(msh, 3, 1);
  h.sending_facility = m.value(msh, 4, 1);
  h.receiving_application = m.value(msh, 5, 1);
  h.receiving_facility = m.value(msh, 6, 1);
  h.message_type = m.value(msh, 9, 1);
  h.trigger_event = m.value(msh, 9, 2);
  h.control_id = m.value(msh, 10);
  h.processing_id = m.value(msh, 11, 1);
  h.version = m.value(msh, 12, 1);
  if (h.message_type.empty() || h.trigger_event.empty()) {
    why = {msh.at(9), "MSH-9: the message type must name a type and an event (as ORU^R01), was " +
                          models::quoted_input(msh.raw(9))};
    return std::nullopt;
  }
  if (h.control_id.empty() || h.control_id.size() > 199) {
    why = {msh.at(10), "MSH-10: a message control id of 1-199 characters is required, was " +
                           models::quoted_input(msh.raw(10))};
    return std::nullopt;
  }
  return h;
}

std::optional<pcd01_content> read_pcd01(const message& m, error& why) {
  pcd01_content out;
  std::optional<int64_t> message_time, group_time;
  std::string group_device;
  if (auto ts = m.value(m.msh(), 7, 1); !ts.empty())
    message_time = parse_hl7_time(ts);
  for (auto& s : m.segments()) {
    if (s.id() == "OBR") {
      group_device.clear();
      group_time.reset();
      if (auto ts = m.value(s, 7, 1); !ts.empty()) {
        group_time = parse_hl7_time(ts);
        if (!group_time) {
          why = {s.at(7), "OBR-7: observation time is not an HL7 date/time, was " + models::quoted_input(ts)};
          return std::nullopt;
        }
      }
      continue;
    }
    if (s.id() != "OBX")
      continue;
    auto equipment = m.value(s, 18, 1);
    if (!equipment.empty()) {
      std::string id;
      for (char c : equipment)
        id += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!models::is_valid_id(id)) {
        why = {s.at(18, 1), "OBX-18: the equipment identifier must be a device id (1-63 letters, digits or '-'), was " +
                                models::quoted_input(equipment)};
        return std::nullopt;
      }
      group_device = std::move(id);
    }
    auto code = m.value(s, 3, 1), refid = m.value(s, 3, 2);
    auto* row = find_code(code, refid);
    auto value_type = m.value(s, 2);
    auto raw_value = m.value(s, 5);
    if (!row) {
      if (value_type == "NM")
        ++out.not_mapped;
      continue;
    }
    if (!value_type.empty() && value_type != "NM") {
      why = {s.at(2), "OBX-2: value type of " + std::string{row->refid} + " must be NM, was " +
                          models::quoted_input(value_type)};
      return std::nullopt;
    }
    if (value_type.empty() && raw_value.empty() && m.value(s, 11).empty())
      continue;  // a row of the device hierarchy carrying no value
    auto status = m.value(s, 11);
    auto quality = quality_of(status);
    if (!quality) {
      why = {s.at(11), "OBX-11: observation result status must be one of F C R P S I X N D W, was " +
                           models::quoted_input(status)};
      return std::nullopt;
    }
    observation o;
    o.metric = row->m;
    o.quality = *quality;
    o.where = s.at(5);
    if (raw_value.empty()) {
      if (*quality == reading_quality::valid || *quality == reading_quality::unspecified) {
        why = {s.at(5), "OBX-5: no value for " + std::string{row->refid} + " with result status " +
                            (status.empty() ? std::string{"(none)"} : status) + " (X says it cannot be obtained)"};
        return std::nullopt;
      }
      o.value = 0;
      if (*quality == reading_quality::unvalidated)
        o.quality = reading_quality::no_signal;
    } else {
      auto v = parse_number(raw_value);
      if (!v) {
        why = {s.at(5), "OBX-5: " + std::string{row->refid} + " must be a number, was " + models::quoted_input(raw_value)};
        return std::nullopt;
      }
      const unit_row* unit = nullptr;
      bool unit_given = false;
      for (int c : {1, 2, 4, 5}) {
        auto token = m.value(s, 6, c);
        if (token.empty())
          continue;
        unit_given = true;
        if ((unit = find_unit(row->m, token)))
          break;
      }
      if (unit_given && !unit) {
        why = {s.at(6), "OBX-6: unit " + models::quoted_input(m.value(s, 6)) + " is not one of " +
                            std::string{models::to_string(row->m)} + "'s (docs/hl7.md)"};
        return std::nullopt;
      }
      o.value = unit ? *v * unit->scale + unit->offset : *v;
    }
    auto ts = m.value(s, 14, 1);
    std::optional<int64_t> t;
    if (!ts.empty()) {
      t = parse_hl7_time(ts);
      if (!t) {
        why = {s.at(14), "OBX-14: observation time is not an HL7 date/time, was " + models::quoted_input(ts)};
        return std::nullopt;
      }
    } else {
      t = group_time ? group_time : message_time;
    }
    if (!t) {
      why = {s.at(14), "OBX-14: no observation time (nor OBR-7, nor a valid MSH-7)"};
      return std::nullopt;
    }
    if (group_device.empty()) {
      why = {s.at(18), "OBX-18: no equipment identifier for this observation (nor on a row above it)"};
      return std::nullopt;
    }
    o.device = group_device;
    o.time_ms = *t;
    if (row->fallback)
      o.where.component = -1;  // marks a fallback until the frame is known
    out.observations.push_back(std::move(o));
  }
  // A pulse rate counts as the heart rate only when the frame has no ECG one.
  auto& obs = out.observations;
  std::vector<bool> drop(obs.size(), false);
  for (size_t i = 0; i < obs.size(); ++i)
    if (obs[i].where.component == -1)
      drop[i] = std::any_of(obs.begin(), obs.end(), [&](const observation& x) {
        return x.where.component != -1 && x.metric == obs[i].metric && x.device == obs[i].device &&
               x.time_ms == obs[i].time_ms;
      });
  std::vector<observation> kept;
  kept.reserve(obs.size());
  for (size_t i = 0; i < obs.size(); ++i) {
    obs[i].where.component = 0;
    if (!drop[i])
      kept.push_back(std::move(obs[i]));
  }
  out.observations = std::move(kept);
  return out;
}

}  // namespace healthtwin::hl7
