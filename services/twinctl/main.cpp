// twinctl: the ops CLI.
//
//   twinctl audit verify --data-dir DIR [--encryption-key-file FILE]
//       walks the hash-chained audit log of a node's data directory (the
//       node must be stopped, or point it at a copy) and reports the first
//       broken link. Exit 0: intact; 1: broken; 2: usage or I/O error.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "storage/audit_log.hpp"
#include "storage/errc.hpp"
#include "storage/store.hpp"

using namespace healthtwin;

int main(int argc, char** argv) {
  CLI::App app{"twinctl: HealthTwin operations"};
  app.require_subcommand(1);
  auto* audit = app.add_subcommand("audit", "the audit log")->require_subcommand(1);
  auto* verify = audit->add_subcommand("verify", "check every link of the hash chain");
  std::string data_dir;
  verify->add_option("--data-dir", data_dir, "the node's data directory (node stopped)")
      ->required()
      ->check(CLI::ExistingDirectory);
  std::string key_file;
  verify->add_option("--encryption-key-file", key_file,
                     "the node key file, when the data directory is encrypted")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  storage::store_settings s;
  s.data_dir = data_dir;
  s.encryption_key_file = key_file;
  auto st = storage::store::open(s);
  if (!st) {
    std::fprintf(stderr, "twinctl: cannot open %s: %s\n", data_dir.c_str(),
                 storage::describe(st.error()).c_str());
    return 2;
  }
  auto v = storage::audit_log::verify(**st);
  if (!v) {
    std::fprintf(stderr, "twinctl: reading the audit log failed: %s\n",
                 storage::describe(v.error()).c_str());
    return 2;
  }
  if (v->first_broken) {
    std::printf("audit log BROKEN at entry %llu: %s (%llu entries before it are intact)\n",
                static_cast<unsigned long long>(*v->first_broken), v->reason.c_str(),
                static_cast<unsigned long long>(v->entries));
    return 1;
  }
  std::printf("audit log intact: %llu entries\n", static_cast<unsigned long long>(v->entries));
  return 0;
}
