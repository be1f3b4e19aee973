#include "services/twinctl/replica_copies.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>

#include "storage/replica_files.hpp"

namespace healthtwin::twinctl {

namespace fs = std::filesystem;

namespace {

// "copy-000042" -> 42; nullopt for any other name.
std::optional<uint64_t> copy_number(const std::string& name, const std::string& suffix) {
  const std::string head = "copy-";
  if (name.size() != head.size() + 6 + suffix.size() || name.compare(0, head.size(), head) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  uint64_t n = 0;
  for (size_t i = head.size(); i < head.size() + 6; ++i) {
    if (name[i] < '0' || name[i] > '9')
      return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  return n;
}

std::optional<copy_info> read_info(const fs::path& file) {
  std::ifstream in{file};
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return std::nullopt;
  try {
    copy_info c;
    c.number = j.at("copy").get<uint64_t>();
    c.node = j.at("node").get<std::string>();
    c.source = j.at("source").get<std::string>();
    c.database_id = j.at("database_id").get<std::string>();
    c.node_key_id = j.at("node_key_id").get<std::string>();
    c.copy_time_ms = j.at("copy_time_ms").get<int64_t>();
    c.files = j.at("files").get<uint64_t>();
    c.bytes = j.at("bytes").get<uint64_t>();
    return c;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

replica_lock::replica_lock(const std::string& dir, std::string& error) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    error = "cannot create " + dir + ": " + ec.message();
    return;
  }
  auto path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    error = "cannot open " + path;
    return;
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    error = "another twinctl replica command works on " + dir + " (stop `twinctl replica follow` first)";
  }
}

replica_lock::~replica_lock() {
  if (fd_ >= 0)
    ::close(fd_);  // releases the lock
}

std::string copy_path(const std::string& dir, uint64_t number) {
  char name[32];
  std::snprintf(name, sizeof name, "copy-%06llu", static_cast<unsigned long long>(number));
  return dir + "/" + name;
}

std::vector<copy_info> complete_copies(const std::string& dir) {
  std::vector<copy_info> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    auto n = copy_number(name, ".json");
    if (!n || !fs::is_directory(copy_path(dir, *n), ec))
      continue;
    if (auto info = read_info(e.path()); info && info->number == *n)
      out.push_back(*info);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.number < b.number; });
  return out;
}

void tidy_copies(const std::string& dir, size_t keep) {
  auto complete = complete_copies(dir);
  std::vector<uint64_t> kept;
  for (size_t i = complete.size() > keep ? complete.size() - keep : 0; i < complete.size(); ++i)
    kept.push_back(complete[i].number);
  auto is_kept = [&](uint64_t n) { return std::find(kept.begin(), kept.end(), n) != kept.end(); };
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    auto as_dir = copy_number(name, ""), as_info = copy_number(name, ".json"),
         as_partial = copy_number(name, ".partial"), as_tmp = copy_number(name, ".json.tmp");
    if (as_partial || as_tmp || (as_dir && !is_kept(*as_dir)) || (as_info && !is_kept(*as_info)))
      doomed.push_back(e.path());
  }
  for (auto& p : doomed)
    fs::remove_all(p, ec);
  sync_path(dir);
}

std::map<std::string, uint64_t> table_files(const std::string& copy_dir) {
  std::map<std::string, uint64_t> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(copy_dir, ec)) {
    auto name = e.path().filename().string();
    if (e.is_regular_file(ec) && storage::immutable_data_file(name))
      out[name] = e.file_size(ec);
  }
  return out;
}

bool sync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

bool write_copy_info(const std::string& dir, const copy_info& c, std::string& error) {
  nlohmann::json j{{"copy", c.number},          {"node", c.node},
                   {"source", c.source},        {"database_id", c.database_id},
                   {"node_key_id", c.node_key_id}, {"copy_time_ms", c.copy_time_ms},
                   {"copy_time", rfc3339(c.copy_time_ms)}, {"files", c.files},
                   {"bytes", c.bytes}};
  auto final_path = copy_path(dir, c.number) + ".json";
  auto tmp = final_path + ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << j.dump(2) << "\n";
    if (!out.flush()) {
      error = "cannot write " + tmp;
      return false;
    }
  }
  std::error_code ec;
  if (!sync_path(tmp) || (fs::rename(tmp, final_path, ec), ec) || !sync_path(dir)) {
    error = "cannot complete " + final_path;
    return false;
  }
  return true;
}

std::string rfc3339(int64_t ms) {
  using google::protobuf::util::TimeUtil;
  return TimeUtil::ToString(TimeUtil::MillisecondsToTimestamp(ms));
}

}  // namespace healthtwin::twinctl
