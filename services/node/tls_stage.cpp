#include "services/node/tls_stage.hpp"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "services/grpc/read_file.hpp"

namespace healthtwin::node {

namespace fs = std::filesystem;

// The content of the files, as read at once.
struct tls_pem {
  std::string cert, key, ca;
};

namespace {

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;

bio_ptr bio_of(const std::string& pem) {
  return {BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free};
}

// Every PEM certificate of `pem`; 0 when one does not parse.
int certificates_in(const std::string& pem) {
  auto bio = bio_of(pem);
  int n = 0;
  while (true) {
    std::unique_ptr<X509, decltype(&X509_free)> c{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free};
    if (!c)
      break;
    ++n;
  }
  // What is left must be whitespace: a broken block is not skipped silently.
  char rest[64];
  int left = BIO_read(bio.get(), rest, sizeof rest);
  for (int i = 0; i < left; ++i)
    if (!std::isspace(static_cast<unsigned char>(rest[i])))
      return 0;
  return n;
}

std::string stamp_of(const tls_files& f) {
  return services::file_stamps({f.cert, f.key, f.ca});
}

bool write_private(const fs::path& path, const std::string& bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << bytes;
  out.close();
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  return static_cast<bool>(out);
}

// What is wrong with the files' content once read into `out` (empty when
// it loads).
std::string read_tls(const tls_files& f, tls_pem& out) {
  auto cert = services::read_file(f.cert), key = services::read_file(f.key);
  auto ca = f.ca.empty() ? std::optional<std::string>{""} : services::read_file(f.ca);
  if (!cert)
    return "the certificate cannot be read";
  if (!key)
    return "the key cannot be read";
  if (!ca)
    return "the CA file cannot be read";
  out = {std::move(*cert), std::move(*key), std::move(*ca)};
  if (certificates_in(out.cert) == 0)
    return "the certificate is not a PEM certificate chain";
  auto cert_bio = bio_of(out.cert), key_bio = bio_of(out.key);
  std::unique_ptr<X509, decltype(&X509_free)> leaf{PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr),
                                                   X509_free};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey{
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free};
  if (!pkey)
    return "the key is not a PEM private key";
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1)
    return "the key does not belong to the certificate";
  if (!f.ca.empty() && certificates_in(out.ca) == 0)
    return "the CA file is not a list of PEM certificates";
  return {};
}

}  // namespace

std::string check_tls_files(const tls_files& f) {
  tls_pem pem;
  return read_tls(f, pem);
}

std::unique_ptr<tls_stage> tls_stage::open(const tls_files& source, std::chrono::seconds interval,
                                           std::string& error) {
  tls_pem pem;
  if (auto why = read_tls(source, pem); !why.empty()) {
    error = "--tls-cert-file, --tls-key-file or the CA: " + why;
    return nullptr;
  }
  auto stamp = stamp_of(source);
  auto base = fs::temp_directory_path() / "healthtwin-tls-XXXXXX";
  std::string dir = base.string();
  if (!mkdtemp(dir.data())) {  // mode 0700
    error = "cannot make a private directory for the TLS files under " + fs::temp_directory_path().string();
    return nullptr;
  }
  std::unique_ptr<tls_stage> s{new tls_stage(source, dir)};
  if (!s->stage(pem, stamp)) {
    error = "cannot copy the TLS files to " + dir;
    return nullptr;
  }
  if (interval.count() > 0)
    s->refresher_ = std::make_unique<periodic>(interval, [raw = s.get()] { raw->refresh(); });
  return s;
}

tls_stage::tls_stage(tls_files source, std::string dir) : source_(std::move(source)), dir_(std::move(dir)) {
  auto current = fs::path{dir_} / "current";
  staged_.cert = (current / "node.pem").string();
  staged_.key = (current / "node.key").string();
  if (!source_.ca.empty())
    staged_.ca = (current / "ca.pem").string();
}

tls_stage::~tls_stage() {
  refresher_.reset();  // before the directory goes
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

// A new generation directory, then the "current" link swapped to it in one
// rename; the generation before the previous one is removed.
bool tls_stage::stage(const tls_pem& pem, const std::string& stamp) {
  auto name = "g" + std::to_string(++generation_);
  auto gen = fs::path{dir_} / name;
  std::error_code ec;
  fs::create_directory(gen, ec);
  if (ec || !write_private(gen / "node.pem", pem.cert) || !write_private(gen / "node.key", pem.key) ||
      (!source_.ca.empty() && !write_private(gen / "ca.pem", pem.ca)))
    return false;
  auto link = fs::path{dir_} / "next";
  fs::remove(link, ec);
  fs::create_directory_symlink(name, link, ec);
  if (!ec)
    fs::rename(link, fs::path{dir_} / "current", ec);
  if (ec)
    return false;
  if (generation_ > 2)
    fs::remove_all(fs::path{dir_} / ("g" + std::to_string(generation_ - 2)), ec);
  stamp_ = stamp;
  return true;
}

void tls_stage::refresh() {
  auto stamp = stamp_of(source_);  // before reading: a change while reading is read again next time
  if (stamp == stamp_)
    return;
  tls_pem pem;
  if (auto why = read_tls(source_, pem); !why.empty()) {
    spdlog::warn("tls: the changed certificate files do not load ({}); the last good certificate stays in use", why);
    stamp_ = stamp;  // said once; the next change is checked again
    return;
  }
  if (!stage(pem, stamp)) {
    spdlog::error("tls: the changed certificate files could not be copied to {}; the last good ones stay in use",
                  dir_);
    return;
  }
  spdlog::info("tls: the changed certificate files serve new connections");
}

}  // namespace healthtwin::node
