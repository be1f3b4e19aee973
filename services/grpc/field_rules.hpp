#pragma once
// Private to services/grpc: the one rule set for the string and mask fields
// of every RPC (docs/api.md, "Field rules"). Checked on create and update
// alike; a violation names the field and quotes at most a bounded prefix of
// what was sent (models::quoted_input).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/field_mask.pb.h>

#include "services/grpc/status_mapping.hpp"

namespace google::protobuf {
class Descriptor;
}

namespace healthtwin::services {

/// Free text shown to people (ward, bed, who acted): 1..max bytes (0..max
/// when optional) without control characters.
bool valid_label(std::string_view s, size_t max, bool optional = false);

/// A note or reason: at most `max` bytes; no control characters other than
/// line feed and tab.
bool valid_note(std::string_view s, size_t max);

/// Limits of the rule set.
inline constexpr size_t max_ward_bytes = 64;
inline constexpr size_t max_bed_bytes = 64;
inline constexpr size_t max_person_bytes = 128;
inline constexpr size_t max_note_bytes = 1000;
inline constexpr int max_mask_paths = 64;
inline constexpr size_t max_mask_path_bytes = 256;

/// The violations of `mask` (request field `field`): at most
/// max_mask_paths paths, each of dot-separated segments of [a-z0-9_]
/// without an empty one (`news2..total` is refused), each naming a field
/// of `message` when given (a read mask), or one of `allowed` (an update
/// mask); `required`: at least one path.
std::vector<field_violation> check_mask(const google::protobuf::FieldMask& mask, const char* field,
                                        const google::protobuf::Descriptor* message,
                                        const std::vector<std::string_view>& allowed = {},
                                        bool required = false);

/// A patient's ward (1-64 characters, required) and bed (up to 64,
/// optional), without control characters, named patient.ward/patient.bed.
std::optional<field_violation> check_ward(std::string_view ward);
std::optional<field_violation> check_bed(std::string_view bed);

/// A region id (home_region): empty (the node's own region) or an
/// identifier (models::is_valid_id).
std::optional<field_violation> check_region(std::string_view region, const char* field);

/// A cluster member's name: 1-253 characters of [a-z0-9.-] (a DNS name,
/// as a StatefulSet's pod names are).
bool valid_member_name(std::string_view name);

/// host:port with a port of 1-65535; the host a DNS name, an IPv4
/// address or a bracketed IPv6 address.
bool valid_host_port(std::string_view address);

}  // namespace healthtwin::services
