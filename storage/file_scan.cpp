#include "storage/file_scan.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>

#include <rocksdb/env.h>

#include "storage/errc.hpp"
#include "storage/file_encryption.hpp"

namespace healthtwin::storage {

namespace {

// A file's contents through the encrypting Env (decrypted); empty on error.
std::string decrypted(rocksdb::Env& env, const std::string& path) {
  std::unique_ptr<rocksdb::SequentialFile> f;
  if (!env.NewSequentialFile(path, &f, rocksdb::EnvOptions{}).ok())
    return {};
  std::string out;
  std::string scratch(1 << 20, '\0');
  for (;;) {
    rocksdb::Slice got;
    if (!f->Read(scratch.size(), &got, scratch.data()).ok() || got.empty())
      break;
    out.append(got.data(), got.size());
  }
  return out;
}

}  // namespace

caf::expected<std::vector<std::string>> files_containing(const store_settings& settings,
                                                         std::string_view needle) {
  std::unique_ptr<rocksdb::Env> env;
  std::string key_id;
  if (!settings.encryption_key_file.empty()) {
    auto key = node_key::load(settings.encryption_key_file);
    if (!key)
      return key.error();
    key_id = key->id();
    env = make_encrypted_env(*key);
  }
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(settings.data_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file())
      continue;
    auto path = it->path().string();
    std::ifstream in{path, std::ios::binary};
    std::string bytes{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
    bool found = bytes.find(needle) != std::string::npos;
    if (!found && env && file_key_id(path) == key_id)
      found = decrypted(*env, path).find(needle) != std::string::npos;
    if (found)
      hits.push_back(std::filesystem::relative(it->path(), settings.data_dir).string());
  }
  if (ec)
    return caf::make_error(errc::io_error, "cannot list " + settings.data_dir + ": " + ec.message());
  return hits;
}

}  // namespace healthtwin::storage
