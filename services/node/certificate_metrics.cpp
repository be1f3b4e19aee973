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

void publish_certificate_expiry(prometheus::Registry& registry, const std::string& certificate,
                                const std::string& path) {
  auto pem = services::read_file(path);
  if (!pem)
    return;
  auto expiry = certificate_expiry(*pem);
  if (!expiry)
    return;
  prometheus::BuildGauge()
      .Name("healthtwin_tls_certificate_expiry_timestamp_seconds")
      .Help("When a certificate the node serves with expires (Unix seconds)")
      .Register(registry)
      .Add({{"certificate", certificate}})
      .Set(*expiry);
}

}  // namespace healthtwin::node
