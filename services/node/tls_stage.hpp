#pragma once
// The node's certificate, key and CA files as its listeners and peer
// channels read them: a private copy (a directory of mode 0700 under the
// temp directory), made again when the files change — and only when they
// load: the certificate chain and key parse and belong together, and every
// CA certificate parses. gRPC's file watcher stops serving new connections
// when the files it watches do not load (gRPC 1.51); watching this copy
// keeps the last good certificate in use instead, and a swap of the copy's
// directory link changes the certificate and key at once.

#include <chrono>
#include <memory>
#include <string>

#include "services/node/periodic.hpp"

namespace healthtwin::node {

struct tls_pem;

struct tls_files {
  std::string cert, key, ca;  ///< ca may be empty
};

/// What is wrong with `f` (a file named by its role: "certificate", "key",
/// "CA"), or empty when it loads.
std::string check_tls_files(const tls_files& f);

class tls_stage {
public:
  /// Copies `source` (checked: nullptr and `error` when it does not load)
  /// and checks it again every `interval` from a thread of its own.
  static std::unique_ptr<tls_stage> open(const tls_files& source, std::chrono::seconds interval,
                                         std::string& error);
  ~tls_stage();
  tls_stage(const tls_stage&) = delete;
  tls_stage& operator=(const tls_stage&) = delete;

  /// The copy's paths: they always name files that load.
  const tls_files& staged() const { return staged_; }

  /// Copies the source again when it changed and loads (the thread calls
  /// it; tests too). A change that does not load is logged once.
  void refresh();

private:
  tls_stage(tls_files source, std::string dir);
  bool stage(const tls_pem& pem, const std::string& stamp);

  tls_files source_, staged_;
  std::string dir_, stamp_;
  unsigned generation_ = 0;
  std::unique_ptr<periodic> refresher_;  // null: read once at start
};

}  // namespace healthtwin::node
