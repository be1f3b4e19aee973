#include "services/node/certificate_metrics.hpp"

#include <ctime>
#include <memory>

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "services/grpc/read_file.hpp"

namespace healthtwin::node {

std::optional<double> certificate_expiry(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free};
  if (!bio)
    return std::nullopt;
  std::unique_ptr<X509, decltype(&X509_free)> cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free};
  if (!cert)
    return std::nullopt;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1)
    return std::nullopt;
  return static_cast<double>(timegm(&tm));
}

certificate_expiry_gauge::certificate_expiry_gauge(prometheus::Registry& registry, std::string certificate,
                                                   std::string path)
    : family_(prometheus::BuildGauge()
                  .Name("healthtwin_tls_certificate_expiry_timestamp_seconds")
                  .Help("When a certificate the node serves with expires (Unix seconds)")
                  .Register(registry)),
      certificate_(std::move(certificate)),
      path_(std::move(path)) {
  refresh();
}

void certificate_expiry_gauge::refresh() {
  auto stamp = services::file_stamp(path_);
  if (stamp == stamp_)
    return;
  stamp_ = stamp;
  auto pem = services::read_file(path_);
  auto expiry = pem ? certificate_expiry(*pem) : std::nullopt;
  if (!expiry)
    return;  // half written, say: the next change is read again
  if (!gauge_)
    gauge_ = &family_.Add({{"certificate", certificate_}});
  gauge_->Set(*expiry);
}

}  // namespace healthtwin::node
