#pragma once

#include <optional>
#include <string>

#include <prometheus/family.h>
#include <prometheus/gauge.h>

namespace prometheus {
class Registry;
}

namespace healthtwin::node {

/// The notAfter time (Unix seconds) of the first certificate in a PEM chain;
/// nullopt when it does not parse.
std::optional<double> certificate_expiry(const std::string& pem);

/// healthtwin_tls_certificate_expiry_timestamp_seconds{certificate} of the
/// PEM file at `path`, so that an alert rule can warn before it expires.
/// refresh() (before each scrape) reads the file again when it changed: a
/// rotated certificate is published without a restart. Nothing is
/// published while the file cannot be read or parsed.
class certificate_expiry_gauge {
public:
  certificate_expiry_gauge(prometheus::Registry& registry, std::string certificate, std::string path);
  void refresh();

private:
  prometheus::Family<prometheus::Gauge>& family_;
  prometheus::Gauge* gauge_ = nullptr;
  std::string certificate_, path_, stamp_;
};

}  // namespace healthtwin::node
