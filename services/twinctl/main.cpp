// twinctl: the ops CLI.
//
//   twinctl audit verify --data-dir DIR [--encryption-key-file FILE]
//       walks the hash-chained audit log of a node's data directory (the
//       node must be stopped, or point it at a copy) and reports the first
//       broken link. Exit 0: intact; 1: broken; 2: usage or I/O error.
//
//   twinctl scan --data-dir DIR [--encryption-key-file FILE] --text T [--text T2 ...]
//       lists the files of a data directory holding any of the texts, read
//       as stored and decrypted with the node key (evidence for an
//       erasure). Exit 0: none found; 1: found; 2: usage or I/O error.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "storage/audit_log.hpp"
#include "storage/errc.hpp"
#include "storage/file_scan.hpp"
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
  auto* scan = app.add_subcommand("scan", "find texts in any file of a data directory");
  std::string scan_dir;
  std::string scan_key;
  std::vector<std::string> texts;
  scan->add_option("--data-dir", scan_dir, "the data directory")->required()->check(CLI::ExistingDirectory);
  scan->add_option("--encryption-key-file", scan_key, "the node key file, to search decrypted contents too")
      ->check(CLI::ExistingFile);
  scan->add_option("--text", texts, "a text to look for (repeatable)")->required();
  CLI11_PARSE(app, argc, argv);

  if (scan->parsed()) {
    storage::store_settings s;
    s.data_dir = scan_dir;
    s.encryption_key_file = scan_key;
    int found = 0;
    for (auto& text : texts) {
      auto hits = storage::files_containing(s, text);
      if (!hits) {
        std::fprintf(stderr, "twinctl: %s\n", storage::describe(hits.error()).c_str());
        return 2;
      }
      for (auto& f : *hits)
        std::printf("found \"%s\" in %s\n", text.c_str(), f.c_str());
      found += hits->empty() ? 0 : 1;
    }
    if (found == 0)
      std::printf("none of %zu texts found\n", texts.size());
    return found == 0 ? 0 : 1;
  }

  storage::store_settings s;
  s.data_dir = data_dir;
  s.shards = 0;  // as the directory was created
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
