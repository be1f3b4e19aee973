#pragma once

#include <optional>
#include <string>

namespace prometheus {
class Registry;
}

namespace healthtwin::node {

/// The notAfter time (Unix seconds) of the first certificate in a PEM chain;
/// nullopt when it does not parse.
std::optional<double> certificate_expiry(const std::string& pem);

/// Publishes healthtwin_tls_certificate_expiry_timestamp_seconds{certificate}
/// for the PEM file at `path` (nothing when it cannot be read), so an alert
/// rule can warn before it expires. Certificates are read at start: a
/// rotated certificate is published by the restarted node.
void publish_certificate_expiry(prometheus::Registry& registry, const std::string& certificate,
                                const std::string& path);

}  // namespace healthtwin::node
