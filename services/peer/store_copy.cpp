#include "services/peer/store_copy.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "storage/errc.hpp"
#include "storage/key_codec.hpp"
#include "storage/store.hpp"

namespace healthtwin::services {

namespace fs = std::filesystem;

namespace {

constexpr char end_mark[] = "HTCE";
constexpr char complete_file[] = "COMPLETE";
constexpr size_t chunk = 256 * 1024;

bool send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    auto k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

// Reads exactly n bytes; false at the end of the stream, an error or the
// socket's receive timeout.
bool read_all(int fd, char* p, size_t n) {
  while (n > 0) {
    auto k = ::read(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

std::string sync_path(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0)
    return "cannot open " + path.string() + ": " + std::strerror(errno);
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok ? std::string{} : "cannot sync " + path.string();
}

std::string sync_dir(const fs::path& dir) { return sync_path(dir, O_RDONLY | O_DIRECTORY); }

bool valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name.find('/') == std::string::npos && name != "." &&
         name != ".." && name != complete_file && name.find('\0') == std::string::npos;
}

std::string send_file(const fs::path& path, int fd) {
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return "cannot read " + path.filename().string() + " of the checkpoint";
  std::string head;
  auto name = path.filename().string();
  storage::key_codec::put_u32(head, static_cast<uint32_t>(name.size()));
  head += name;
  auto size = fs::file_size(path);
  storage::key_codec::put_u64(head, size);
  std::vector<char> buf(chunk);
  bool ok = send_all(fd, head.data(), head.size());
  for (uint64_t left = size; ok && left > 0;) {
    auto k = ::read(in, buf.data(), std::min<uint64_t>(left, buf.size()));
    ok = k > 0 && send_all(fd, buf.data(), static_cast<size_t>(k));
    left -= ok ? static_cast<uint64_t>(k) : 0;
  }
  ::close(in);
  return ok ? std::string{} : "the stream to the voter broke at " + name;
}

}  // namespace

std::string staged_path(const std::string& data_dir) {
  return fs::absolute(data_dir).lexically_normal().string() + ".copy";
}

std::string send_store_copy(storage::store& store, const std::string& scratch, int fd) {
  auto index = store.replicated_index();  // the copy holds at least this
  auto made = store.checkpoint(scratch);
  if (!made)
    return "checkpoint: " + storage::describe(made.error());
  std::string why;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(scratch, ec)) {
    if (!e.is_regular_file())
      continue;
    if (why = send_file(e.path(), fd); !why.empty())
      break;
  }
  if (ec && why.empty())
    why = "cannot list the checkpoint: " + ec.message();
  if (why.empty()) {
    std::string tail;
    storage::key_codec::put_u32(tail, 0);
    storage::key_codec::put_u64(tail, index);
    tail += end_mark;
    if (!send_all(fd, tail.data(), tail.size()))
      why = "the stream to the voter broke at its end";
  }
  fs::remove_all(scratch, ec);
  return why;
}

std::string receive_store_copy(int fd, const std::string& staged, uint64_t& index, uint64_t max_bytes,
                               int idle_timeout_s) {
  timeval idle{idle_timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  fs::path partial = staged + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  if (!fs::create_directories(partial, ec))
    return "cannot make " + partial.string() + ": " + ec.message();
  uint64_t total = 0;
  std::vector<char> buf(chunk);
  for (;;) {
    char u32[4], u64[8];
    if (!read_all(fd, u32, 4))
      return "the copy ended early (no file header)";
    auto name_size = storage::key_codec::get_u32({u32, 4});
    if (name_size == 0)
      break;
    if (name_size > 255)
      return "a file name of " + std::to_string(name_size) + " bytes";
    std::string name(name_size, '\0');
    if (!read_all(fd, name.data(), name.size()) || !read_all(fd, u64, 8))
      return "the copy ended early (in a file header)";
    if (!valid_name(name))
      return "a file name that is not a plain name: \"" + name.substr(0, 64) + "\"";
    auto size = storage::key_codec::get_u64({u64, 8});
    if (size > max_bytes - total)
      return "the copy is larger than " + std::to_string(max_bytes) + " bytes";
    total += size;
    auto path = partial / name;
    int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
      return "cannot write " + path.string() + ": " + std::strerror(errno);
    bool ok = true;
    for (uint64_t left = size; ok && left > 0;) {
      auto n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      ok = read_all(fd, buf.data(), n) && ::write(out, buf.data(), n) == static_cast<ssize_t>(n);
      left -= ok ? n : 0;
    }
    ok = ok && ::fsync(out) == 0;
    ::close(out);
    if (!ok)
      return "the copy ended early, or a write failed, in " + name;
  }
  char tail[12];
  if (!read_all(fd, tail, sizeof tail) || std::memcmp(tail + 8, end_mark, 4) != 0)
    return "the copy has no end mark";
  index = storage::key_codec::get_u64({tail, 8});
  {
    int done = ::open((partial / complete_file).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = done >= 0 && ::fsync(done) == 0;
    if (done >= 0)
      ::close(done);
    if (!ok)
      return "cannot mark the copy complete";
  }
  if (auto why = sync_dir(partial); !why.empty())
    return why;
  fs::remove_all(staged, ec);
  fs::rename(partial, staged, ec);
  if (ec)
    return "cannot move the copy to " + staged + ": " + ec.message();
  return sync_dir(fs::absolute(staged).parent_path());
}

std::string install_staged_copy(const std::string& data_dir, bool& installed) {
  installed = false;
  fs::path data = fs::absolute(data_dir).lexically_normal();
  fs::path staged = staged_path(data_dir), replaced = data.string() + ".replaced";
  std::error_code ec;
  fs::remove_all(staged.string() + ".partial", ec);  // a copy that did not finish
  if (!fs::exists(staged / complete_file)) {
    fs::remove(data / complete_file, ec);  // an install that stopped after its last rename
    fs::remove_all(replaced, ec);
    return {};
  }
  // The voter's Raft state (its term, vote and log) stays its own.
  if (fs::exists(data / "raft") && !fs::exists(staged / "raft")) {
    fs::rename(data / "raft", staged / "raft", ec);
    if (ec)
      return "cannot keep the Raft state: " + ec.message();
  }
  if (fs::exists(data)) {
    fs::remove_all(replaced, ec);
    fs::rename(data, replaced, ec);
    if (ec)
      return "cannot set " + data.string() + " aside: " + ec.message();
  }
  fs::rename(staged, data, ec);
  if (ec)
    return "cannot install the copy: " + ec.message();
  if (auto why = sync_dir(data.parent_path()); !why.empty())
    return why;
  fs::remove(data / complete_file, ec);
  fs::remove_all(replaced, ec);
  installed = true;
  return {};
}

}  // namespace healthtwin::services
