#include "services/grpc/field_rules.hpp"

#include <algorithm>
#include <cctype>
#include <string>

#include <google/protobuf/util/field_mask_util.h>

#include "actors/models/quoted.hpp"
#include "actors/models/twin_name.hpp"

namespace healthtwin::services {

namespace {

bool control(char c, bool allow_line_breaks) {
  auto u = static_cast<unsigned char>(c);
  if (allow_line_breaks && (c == '\n' || c == '\t'))
    return false;
  return u < 0x20 || u == 0x7F;
}

// Dot-separated segments of [a-z0-9_], none empty.
bool path_syntax_ok(std::string_view path) {
  if (path.empty() || path.size() > max_mask_path_bytes || path.front() == '.' || path.back() == '.')
    return false;
  char prev = '.';
  for (char c : path) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok || (c == '.' && prev == '.'))
      return false;
    prev = c;
  }
  return true;
}

}  // namespace

bool valid_label(std::string_view s, size_t max, bool optional) {
  if (s.size() > max || (!optional && s.empty()))
    return false;
  return std::none_of(s.begin(), s.end(), [](char c) { return control(c, false); });
}

bool valid_note(std::string_view s, size_t max) {
  return s.size() <= max && std::none_of(s.begin(), s.end(), [](char c) { return control(c, true); });
}

std::vector<field_violation> check_mask(const google::protobuf::FieldMask& mask, const char* field,
                                        const google::protobuf::Descriptor* message,
                                        const std::vector<std::string_view>& allowed, bool required) {
  using google::protobuf::util::FieldMaskUtil;
  std::vector<field_violation> bad;
  std::string name{field};
  if (required && mask.paths_size() == 0)
    bad.push_back({name, "must name at least one field"});
  if (mask.paths_size() > max_mask_paths) {
    bad.push_back({name, "has more than " + std::to_string(max_mask_paths) + " paths"});
    return bad;
  }
  for (int i = 0; i < mask.paths_size(); ++i) {
    auto& path = mask.paths(i);
    auto where = name + ".paths[" + std::to_string(i) + "]";
    if (!path_syntax_ok(path)) {
      bad.push_back({where, models::quoted_input(path) +
                                " is not a field path (dot-separated names of [a-z0-9_], at most " +
                                std::to_string(max_mask_path_bytes) + " bytes)"});
      continue;
    }
    if (message && !FieldMaskUtil::GetFieldDescriptors(message, path, nullptr)) {
      bad.push_back({where, models::quoted_input(path) + " is not a field of " + message->name()});
      continue;
    }
    if (!message && std::find(allowed.begin(), allowed.end(), path) == allowed.end()) {
      std::string list;
      for (auto a : allowed)
        list += (list.empty() ? "" : ", ") + std::string{a};
      bad.push_back({where, models::quoted_input(path) + " cannot be changed (" + list + ")"});
    }
  }
  return bad;
}

std::optional<field_violation> check_ward(std::string_view ward) {
  if (valid_label(ward, max_ward_bytes))
    return std::nullopt;
  return field_violation{"patient.ward", "must be 1-64 characters without control characters"};
}

std::optional<field_violation> check_bed(std::string_view bed) {
  if (valid_label(bed, max_bed_bytes, true))
    return std::nullopt;
  return field_violation{"patient.bed", "must be at most 64 characters without control characters"};
}

std::optional<field_violation> check_region(std::string_view region, const char* field) {
  if (region.empty() || models::is_valid_id(region))
    return std::nullopt;
  return field_violation{field, "must be empty (this node's region) or 1-63 characters of [a-z0-9-], "
                                "starting with a letter or digit"};
}

bool valid_member_name(std::string_view name) {
  return !name.empty() && name.size() <= 253 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  });
}

bool valid_host_port(std::string_view address) {
  auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || address.size() > 300)
    return false;
  auto host = address.substr(0, colon), port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
        return c >= '0' && c <= '9';
      }))
    return false;
  auto number = std::stoul(std::string{port});
  if (number == 0 || number > 65535)
    return false;
  if (host.front() == '[')
    return host.size() > 2 && host.back() == ']' &&
           std::all_of(host.begin() + 1, host.end() - 1, [](char c) {
             return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
           });
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
  });
}

}  // namespace healthtwin::services
